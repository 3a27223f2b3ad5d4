-- invoice_lines: every line of every subscribed customer's invoice for the periods a command
-- selected, before discounts and taxes (jobs/tallyflow/core/totals.py), computed from the raw
-- accepted events (events FINAL), never from windows, so non-additive meters are exact and late
-- events count in their own period.
-- Parameters: the selection (jobs/tallyflow/core/periods.py Selection: sel_mode 'starts' = each
-- subscription's periods that start in [sel_start, sel_end), 'contains' = the one containing
-- sel_start, 'list' = the periods of list_customers[i] that start at list_starts[i];
-- sel_length and sel_anchored narrow a name to its kind of period), customer ('' = all),
-- digest (the catalog to price with; '' = the one applied last), and the aggregation registry of
-- jobs/tallyflow/core/aggregations.py as parallel arrays (aggregations, period_rules, levels,
-- time_units, unit_ms), so this query applies each meter's period rule without naming one itself.
-- Periods: each subscription's own, counted from its billing anchor (sql/ddl/000..006); an
-- invoice is one customer's period, (customer_id, period_start).
-- Pricing follows docs/catalog.md and matches jobs/tallyflow/core/pricing.py (tests/vectors/):
--   B = max(0, U - included_units); per_unit B*p; graduated sums tiers (first tier always
--   reached); volume prices all of B at its tier; package ceil(B/size)*price; staircase the
--   step price. Each model is written once, as its breakdown; the amount is the breakdown's sum.
--   Each line is rounded half-up to the currency's minor units; the minimum commitment true-up
--   compares against the sum of the rounded lines.
-- Segments: a subscription that covers part of the period, and each plan version with
-- apply: immediately that takes effect inside it, start a segment; each segment is priced as its
-- own period (tiers restart), base fee and minimum prorated by its share of the period.
-- Arithmetic runs in Decimal256 (scale 24) so products of two DECIMAL(38,12) never overflow.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH
    {sel_start:DateTime64(3, 'UTC')} AS sel_start,
    -- The choice stays outside the subquery: inside it, a constant condition lets ClickHouse fold
    -- the aggregate away and return one row per applied catalog.
    if({digest:String} = '', (SELECT catalog_digest FROM catalog_in_force), {digest:String}) AS digest,
    periods AS (
        -- The selected periods of each subscription that overlap it: from the period containing
        -- sel_start, sel_candidates of them (enough weeks to cover the window), or the listed
        -- ones (sql/ddl/000..006: the period rule). Computed once, as one scalar array:
        -- ClickHouse inlines a CTE wherever it is used, and analysing the period rule at each of
        -- the dozen places the segments reach took 3 s of a 3.5 s query on a handful of rows.
        SELECT p.1 AS customer_id, p.2 AS plan_id, p.3 AS price_key, p.4 AS ps, p.5 AS pe, p.6 AS period_name,
               p.7 AS sub_start, p.8 AS sub_end
        FROM (SELECT arrayJoin((
            SELECT groupArray((customer_id, plan_id, price_key, ps, pe, period_name, sub_start, sub_end)) FROM (
                SELECT customer_id, plan_id, price_key, ps, pe, period_name,
                       greatest(sub_from, ps) AS sub_start, least(ifNull(sub_to, pe), pe) AS sub_end
                FROM (
                    SELECT s.customer_id AS customer_id, s.plan_id AS plan_id, s.price_key AS price_key,
                           s.start AS sub_from, s.`end` AS sub_to, s.billing_anchor IS NOT NULL AS anchored, l.length AS length,
                           tf_period_months(length) AS months, tf_period_anchor(s.billing_anchor, length) AS a,
                           arrayJoin(if({sel_mode:String} = 'list',
                                        arrayFilter((t, c) -> c = s.customer_id, {list_starts:Array(DateTime64(3, 'UTC'))},
                                                    {list_customers:Array(String)}),
                                        [sel_start])) AS t_sel,
                           tf_period_index(t_sel, months, a) + arrayJoin(range({sel_candidates:UInt32})) AS k,
                           tf_period_start(k, months, a) AS ps, tf_period_start(k + 1, months, a) AS pe,
                           tf_period_name(ps, length, anchored) AS period_name
                    FROM catalog_subscriptions AS s
                    INNER JOIN (
                        SELECT plan_id, any(billing_period) AS length FROM catalog_plans
                        WHERE catalog_digest = digest AND price_key = '' GROUP BY plan_id
                    ) AS l ON l.plan_id = s.plan_id
                    WHERE s.catalog_digest = digest AND ({customer:String} = '' OR s.customer_id = {customer:String})
                )
                WHERE ({sel_length:String} = '' OR length = {sel_length:String})
                  AND ({sel_anchored:Int8} = -1 OR anchored = ({sel_anchored:Int8} = 1))
                  AND multiIf({sel_mode:String} = 'contains', ps <= sel_start AND sel_start < pe,
                              {sel_mode:String} = 'list', has(arrayZip({list_customers:Array(String)},
                                                                       {list_starts:Array(DateTime64(3, 'UTC'))}),
                                                              (customer_id, ps)),
                              ps >= sel_start AND ps < {sel_end:DateTime64(3, 'UTC')})
                  AND sub_from < pe AND ifNull(sub_to, pe) > ps
            )
        )) AS p)
    ),
    cuts AS (
        -- The period splits where a version with apply: immediately takes effect.
        SELECT sb.customer_id AS customer_id, sb.plan_id AS plan_id, sb.price_key AS price_key, sb.ps AS ps,
               sb.pe AS pe, sb.period_name AS period_name, sb.sub_end AS sub_end,
               arraySort(arrayDistinct(arrayConcat([sb.sub_start], groupArrayIf(p.effective_from,
                   p.apply = 'immediately' AND p.effective_from > sb.sub_start AND p.effective_from < sb.sub_end)))) AS starts
        FROM periods AS sb
        INNER JOIN catalog_plans AS p
            ON p.plan_id = sb.plan_id AND p.price_key = sb.price_key AND p.catalog_digest = digest
        GROUP BY sb.customer_id, sb.plan_id, sb.price_key, sb.ps, sb.pe, sb.period_name, sb.sub_start, sb.sub_end
    ),
    segments AS (
        -- Each segment is priced as its own period; fees are prorated by its share of the
        -- period's milliseconds (24 decimal places, truncated).
        SELECT customer_id, plan_id, price_key, ps, pe, period_name, starts[i] AS seg_start,
               if(i = length(starts), sub_end, starts[i + 1]) AS seg_end,
               toDecimal256(dateDiff('millisecond', seg_start, seg_end), 24)
                   / toDecimal256(dateDiff('millisecond', ps, pe), 0) AS share
        FROM cuts
        ARRAY JOIN arrayEnumerate(starts) AS i
    ),
    versions AS (
        -- The version in force at the segment's start (sql/ddl/001_version_in_force.sql).
        SELECT
            sg.customer_id AS customer_id, sg.plan_id AS plan_id, sg.price_key AS price_key, sg.ps AS ps,
            sg.pe AS pe, sg.period_name AS period_name, sg.seg_start AS seg_start, sg.seg_end AS seg_end,
            sg.share AS share,
            tf_version_in_force(groupArray(p.version), groupArray(p.effective_from), groupArray(p.apply), sg.ps,
                                sg.seg_start) AS version
        FROM segments AS sg
        INNER JOIN catalog_plans AS p
            ON p.plan_id = sg.plan_id AND p.price_key = sg.price_key AND p.catalog_digest = digest
        GROUP BY sg.customer_id, sg.plan_id, sg.price_key, sg.ps, sg.pe, sg.period_name, sg.seg_start, sg.seg_end,
                 sg.share
    ),
    plans AS (
        SELECT v.*, p.currency AS currency, p.minor_units AS minor_units, p.base_fee AS base_fee,
               p.minimum_commitment AS minimum_commitment, p.base_fee_override AS base_fee_override,
               p.minimum_override AS minimum_override
        FROM versions AS v
        INNER JOIN catalog_plans AS p
            ON p.plan_id = v.plan_id AND p.price_key = v.price_key AND p.version = v.version
           AND p.catalog_digest = digest
    ),
    charges AS (
        SELECT pl.customer_id AS customer_id, pl.plan_id AS plan_id, pl.version AS version, pl.ps AS ps,
               pl.pe AS pe, pl.period_name AS period_name,
               pl.seg_start AS seg_start, pl.seg_end AS seg_end, pl.currency AS currency,
               pl.minor_units AS minor_units, c.charge_index AS charge_index, c.meter_id AS meter_id,
               c.filter AS filter, c.model AS model, c.included_units AS included_units,
               c.unit_price AS unit_price, c.package_size AS package_size, c.package_price AS package_price,
               c.tier_up_to AS tier_up_to, c.tier_unit_price AS tier_unit_price, c.tier_flat_fee AS tier_flat_fee,
               c.step_up_to AS step_up_to, c.step_price AS step_price, c.override AS override,
               m.event_type AS event_type, m.value_key AS value_key, m.group_by AS group_by,
               transform(m.aggregation, {aggregations:Array(String)}, {period_rules:Array(String)}, '') AS rule,
               transform(m.aggregation, {aggregations:Array(String)}, {levels:Array(Float64)}, toFloat64(0)) AS level,
               transform(m.unit, {time_units:Array(String)}, {unit_ms:Array(UInt64)}, toUInt64(1)) AS unit_ms
        FROM plans AS pl
        INNER JOIN catalog_charges AS c
            ON c.plan_id = pl.plan_id AND c.price_key = pl.price_key AND c.version = pl.version
           AND c.catalog_digest = digest
        INNER JOIN catalog_meters AS m ON m.meter_id = c.meter_id AND m.catalog_digest = digest
    ),
    read_keys AS (
        -- Per event type, the dimensions a charge reads: its filter's keys, and a unique_count's
        -- dimension. Folding keeps only these, so a dimension no charge reads (a user id on every
        -- event) does not split the folded rows.
        SELECT m.event_type AS event_type,
               groupUniqArrayArray(arrayConcat(mapKeys(c.filter),
                   if(transform(m.aggregation, {aggregations:Array(String)}, {period_rules:Array(String)}, '')
                      = 'distinct', [m.value_key], []))) AS keys
        FROM catalog_charges AS c
        INNER JOIN catalog_meters AS m ON m.meter_id = c.meter_id AND m.catalog_digest = c.catalog_digest
        WHERE c.catalog_digest = digest
        GROUP BY m.event_type
    ),
    folded AS (
        -- The periods' events folded once, before they meet the charges: one row per customer,
        -- event type, dimensions read and segment, with every value key's sum and max (sumMap,
        -- maxMap). Count, sum, max and unique_count (of a dimension, part of the key) over these
        -- rows are exact, and the charges' filters then test a few rows per customer instead of
        -- every event (10M events of 10,000 customers: 120,000 rows). Events of a type that a
        -- latest or quantile rule reads stay one row each (their id and time join the key): those
        -- need every value. The segment is the customer's last one starting at or before the
        -- event (ASOF: one customer's subscriptions never overlap, so neither do its segments).
        SELECT e.customer_id AS customer_id, e.event_type AS event_type, e.dimensions AS dimensions,
               sg.seg_start AS seg_start, count() AS n, sumMap(e.`values`) AS v_sum, maxMap(e.`values`) AS v_max,
               any(e.`values`) AS v_one, any(e.event_time) AS t_one, any(e.event_id) AS id_one
        FROM (
            SELECT ev.customer_id AS customer_id, ev.event_id AS event_id, ev.event_type AS event_type,
                   ev.event_time AS event_time, ev.`values` AS `values`,
                   mapFilter((k, v) -> has(rk.keys, k), ev.dimensions) AS dimensions,
                   ev.event_type IN (SELECT event_type FROM charges WHERE rule IN ('latest', 'quantile')) AS one_each
            FROM events AS ev FINAL
            LEFT JOIN read_keys AS rk ON rk.event_type = ev.event_type
            -- The periods' partitions only; for one customer, only its part of the primary key.
            WHERE ev.event_time >= (SELECT min(ps) FROM periods) AND ev.event_time < (SELECT max(pe) FROM periods)
              AND ({customer:String} = '' OR ev.customer_id = {customer:String})
        ) AS e
        ASOF INNER JOIN (SELECT customer_id, seg_start, seg_end FROM segments) AS sg
            ON e.customer_id = sg.customer_id AND e.event_time >= sg.seg_start
        WHERE e.event_time < sg.seg_end
        GROUP BY e.customer_id, e.event_type, e.dimensions, sg.seg_start,
                 if(e.one_each, e.event_id, ''), if(e.one_each, e.event_time, toDateTime64(0, 3, 'UTC'))
    ),
    usage AS (
        -- U per charge: the meter's period rule over the segment's folded rows that pass the
        -- filter. The folded rows are the probe side and the charges (a few per customer) the
        -- hash table; each aggregate takes only the rows of charges whose rule uses it. A quantile
        -- is the element at index floor(level x n) of the sorted values (quantileExact's rule).
        SELECT ch.customer_id AS customer_id, ch.seg_start AS seg_start, ch.charge_index AS charge_index,
               any(ch.rule) AS rule, any(ch.level) AS level,
               sum(f.n) AS n_events,
               sumIf(f.v_sum[ch.value_key], mapContains(f.v_sum, ch.value_key) AND ch.rule = 'sum') AS v_sum,
               maxIf(f.v_max[ch.value_key], mapContains(f.v_max, ch.value_key) AND ch.rule = 'max') AS v_max,
               uniqExactIf(f.dimensions[ch.value_key],
                           mapContains(f.dimensions, ch.value_key) AND ch.rule = 'distinct') AS v_distinct,
               argMaxIf(f.v_one[ch.value_key], (f.t_one, f.id_one),
                        (mapContains(f.v_one, ch.value_key) AS has_one) AND ch.rule = 'latest') AS v_latest,
               arraySort(groupArrayIf(f.v_one[ch.value_key], has_one AND ch.rule = 'quantile')) AS v_sorted
        FROM folded AS f
        INNER JOIN charges AS ch
            ON f.customer_id = ch.customer_id AND f.event_type = ch.event_type AND f.seg_start = ch.seg_start
        WHERE arrayAll((k, v) -> f.dimensions[k] = v, mapKeys(ch.filter), mapValues(ch.filter))
        GROUP BY ch.customer_id, ch.seg_start, ch.charge_index
    ),
    tw_points AS (
        -- time_weighted charges: every level the meter's resources (its group_by dimensions)
        -- reported before the segment's end, earlier periods included: the last level before the
        -- segment carries into it. Sorted by resource, time and event id.
        SELECT ch.customer_id AS customer_id, ch.seg_start AS seg_start, ch.charge_index AS charge_index,
               any(ch.seg_end) AS seg_end, any(ch.unit_ms) AS unit_ms,
               arraySort(x -> (x.1, x.2, x.3), groupArray((arrayMap(k -> e.dimensions[k], ch.group_by), e.event_time,
                   e.event_id, toDecimal256(e.`values`[ch.value_key], 12)))) AS points
        FROM (
            -- Without FINAL: a row the loader landed twice is the same level at the same instant,
            -- held for no time by the first of the two (the integral is the same), and FINAL over
            -- every partition before the period's end would cost more than the integral itself.
            SELECT customer_id, event_id, event_type, event_time, `values`, dimensions FROM events
            WHERE (customer_id, event_type) IN (SELECT customer_id, event_type FROM charges WHERE rule = 'time_weighted')
              AND event_time < (SELECT max(pe) FROM periods)
              AND ({customer:String} = '' OR customer_id = {customer:String})
        ) AS e
        INNER JOIN (SELECT * FROM charges WHERE rule = 'time_weighted') AS ch
            ON e.customer_id = ch.customer_id AND e.event_type = ch.event_type
        WHERE e.event_time < ch.seg_end AND mapContains(e.`values`, ch.value_key)
          AND arrayAll((k, v) -> e.dimensions[k] = v, mapKeys(ch.filter), mapValues(ch.filter))
        GROUP BY ch.customer_id, ch.seg_start, ch.charge_index
    ),
    tw_usage AS (
        -- The integral over the segment: each level held from its event to its resource's next
        -- one (or the segment's end), clipped to the segment, in level-milliseconds (exact), then
        -- divided by the unit's milliseconds (truncated to 12 places).
        SELECT customer_id, seg_start, charge_index,
               arraySum(i -> points[i].4 * toDecimal256(greatest(0, dateDiff('millisecond',
                   greatest(points[i].2, seg_start),
                   least(if(i < length(points) AND points[i + 1].1 = points[i].1, points[i + 1].2, seg_end), seg_end))), 0),
                   arrayEnumerate(points)) / toDecimal256(unit_ms, 0) AS v_time_weighted
        FROM tw_points
    ),
    measured AS (
        SELECT ch.*, tw.v_time_weighted AS v_time_weighted
        FROM charges AS ch
        LEFT JOIN tw_usage AS tw
            ON tw.customer_id = ch.customer_id AND tw.seg_start = ch.seg_start AND tw.charge_index = ch.charge_index
    ),
    quantities AS (
        SELECT ch.*,
               toDecimal256(multiIf(
                   u.rule = 'count', toDecimal128(u.n_events, 12),
                   u.rule = 'sum', toDecimal128(u.v_sum, 12),
                   u.rule = 'max', toDecimal128(u.v_max, 12),
                   u.rule = 'distinct', toDecimal128(u.v_distinct, 12),
                   u.rule = 'latest', toDecimal128(u.v_latest, 12),
                   u.rule = 'quantile', toDecimal128(
                       u.v_sorted[least(toUInt64(floor(u.level * length(u.v_sorted))) + 1, length(u.v_sorted))], 12),
                   ch.rule = 'time_weighted', toDecimal128(ch.v_time_weighted, 12),
                   toDecimal128(0, 12)), 12) AS quantity,
               greatest(quantity - toDecimal256(ch.included_units, 12), toDecimal256(0, 12)) AS billable,
               arrayMap(x -> toDecimal256(ifNull(x, 0), 12), ch.tier_up_to) AS t_up,
               arrayMap(x -> isNull(x), ch.tier_up_to) AS t_open,
               arrayMap(i -> if(i = 1, toDecimal256(0, 12), t_up[i - 1]), arrayEnumerate(t_up)) AS t_low,
               arrayMap(i -> greatest(toDecimal256(0, 12), if(t_open[i], billable, least(billable, t_up[i])) - t_low[i]),
                        arrayEnumerate(t_up)) AS t_units,
               arrayFirstIndex(i -> t_open[i] OR billable <= t_up[i], arrayEnumerate(t_up)) AS t_index,
               arrayMap(x -> toDecimal256(ifNull(x, 0), 12), ch.step_up_to) AS s_up,
               arrayFirstIndex(i -> isNull(ch.step_up_to[i]) OR billable <= s_up[i], arrayEnumerate(s_up)) AS s_index,
               if(ch.model = 'package', floor(billable / toDecimal256(ch.package_size, 12)), toDecimal256(0, 12)) AS pk_floor,
               -- Whole packages: floor of the quotient, plus one for any remainder (exact, no rounding).
               -- (package_size is NULL on other models: the quotient is NULL there, never a division by 0.)
               ifNull(pk_floor + if(billable > pk_floor * toDecimal256(ifNull(ch.package_size, 0), 12), 1, 0), 0) AS packages,
               -- Each model once: the tiers, step, packages or units behind the amount, as
               -- (index, '', units, unit price, flat fee, amount); the amount is their sum.
               multiIf(
                   ch.model = 'graduated', arrayFilter(x -> x.1 = 1 OR x.3 > 0, arrayMap(i -> (toUInt32(i), '',
                       toDecimal256(t_units[i], 24), toDecimal256(ch.tier_unit_price[i], 24),
                       toDecimal256(if(i = 1 OR t_units[i] > 0, ch.tier_flat_fee[i], 0), 24),
                       toDecimal256(t_units[i] * toDecimal256(ch.tier_unit_price[i], 12)
                           + if(i = 1 OR t_units[i] > 0, toDecimal256(ch.tier_flat_fee[i], 24), toDecimal256(0, 24)), 24)),
                       arrayEnumerate(t_up))),
                   ch.model = 'volume', [(toUInt32(t_index), '', toDecimal256(billable, 24),
                       toDecimal256(ch.tier_unit_price[t_index], 24), toDecimal256(ch.tier_flat_fee[t_index], 24),
                       toDecimal256(billable * toDecimal256(ch.tier_unit_price[t_index], 12)
                           + toDecimal256(ch.tier_flat_fee[t_index], 24), 24))],
                   ch.model = 'staircase', [(toUInt32(s_index), '', toDecimal256(billable, 24), toDecimal256(0, 24),
                       toDecimal256(ch.step_price[s_index], 24), toDecimal256(ch.step_price[s_index], 24))],
                   ch.model = 'package', [(toUInt32(1), '', toDecimal256(packages, 24),
                       toDecimal256(ifNull(ch.package_price, 0), 24), toDecimal256(0, 24),
                       toDecimal256(packages * toDecimal256(ifNull(ch.package_price, 0), 12), 24))],
                   ch.model = 'per_unit', [(toUInt32(1), '', toDecimal256(billable, 24),
                       toDecimal256(ifNull(ch.unit_price, 0), 24), toDecimal256(0, 24),
                       toDecimal256(billable * toDecimal256(ifNull(ch.unit_price, 0), 12), 24))],
                   CAST([], 'Array(Tuple(UInt32, String, Decimal(76, 24), Decimal(76, 24), Decimal(76, 24), Decimal(76, 24)))')
               ) AS breakdown,
               arraySum(x -> x.6, breakdown) AS amount_exact
        FROM measured AS ch
        LEFT JOIN usage AS u
            ON u.customer_id = ch.customer_id AND u.seg_start = ch.seg_start AND u.charge_index = ch.charge_index
    ),
    charge_lines AS (
        SELECT customer_id, plan_id, version, currency, minor_units, ps, pe, period_name, seg_start, seg_end,
               override, 'usage' AS line_type, charge_index + 1 AS line_order, meter_id,
               arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), mapKeys(filter), mapValues(filter)), ',') AS filter_text,
               model, toDecimal256(quantity, 24) AS quantity, toDecimal256(billable, 24) AS billable,
               toDecimal256(amount_exact, 24) AS amount_exact, breakdown
        FROM quantities
    ),
    base_lines AS (
        SELECT customer_id, plan_id, version, currency, minor_units, ps, pe, period_name, seg_start, seg_end,
               base_fee_override AS override, 'base_fee' AS line_type, 0 AS line_order, '' AS meter_id, '' AS filter_text, '' AS model,
               toDecimal256(share, 24) AS quantity, toDecimal256(share, 24) AS billable,
               toDecimal256(toDecimal256(base_fee, 12) * share, 24) AS amount_exact,
               CAST([], 'Array(Tuple(UInt32, String, Decimal(76, 24), Decimal(76, 24), Decimal(76, 24), Decimal(76, 24)))') AS breakdown
        FROM plans
        WHERE base_fee > 0
    ),
    credit_terms AS (
        SELECT pl.customer_id AS customer_id, pl.plan_id AS plan_id, pl.version AS version, pl.currency AS currency,
               pl.minor_units AS minor_units, pl.ps AS ps, pl.pe AS pe, pl.period_name AS period_name,
               pl.seg_start AS seg_start, pl.seg_end AS seg_end,
               r.meter_id AS meter_id, p.on_exhausted AS on_exhausted,
               -- What one uncovered credit costs: the credit price times the overage multiplier (pause: 0).
               if(p.on_exhausted = 'overage',
                  toDecimal256(assumeNotNull(p.credit_price), 12) * toDecimal256(p.overage_multiplier, 12),
                  toDecimal256(0, 24)) AS overage_price
        FROM plans AS pl
        INNER JOIN catalog_plans AS p
            ON p.plan_id = pl.plan_id AND p.price_key = '' AND p.version = pl.version AND p.catalog_digest = digest
        INNER JOIN catalog_credit_rates AS r
            ON r.plan_id = pl.plan_id AND r.version = pl.version AND r.catalog_digest = digest
    ),
    credit_usage AS (
        -- Per segment and credit-priced meter, from the job's ledger (so the invoice and the
        -- real-time balance never disagree): the usage, and the part grants covered (draws) or did
        -- not (uncovered). The time condition lives in the aggregates: unmatched rows of a LEFT JOIN
        -- carry defaults.
        SELECT ct.customer_id AS customer_id, ct.plan_id AS plan_id, ct.version AS version, ct.currency AS currency,
               ct.minor_units AS minor_units, ct.ps AS ps, ct.pe AS pe, ct.period_name AS period_name,
               ct.seg_start AS seg_start, ct.seg_end AS seg_end,
               ct.meter_id AS meter_id, any(ct.overage_price) AS overage_price,
               sumIf(toDecimal256(l.quantity, 24),
                     (l.event_time >= ct.seg_start AND l.event_time < ct.seg_end) AS in_seg) AS units,
               sumIf(toDecimal256(l.quantity, 24), in_seg AND l.kind = 'uncovered') AS uncovered_units,
               sumIf(toDecimal256(l.credits, 24), in_seg AND l.kind = 'draw') AS covered_credits,
               sumIf(toDecimal256(l.credits, 24), in_seg AND l.kind = 'uncovered') AS uncovered_credits
        FROM credit_terms AS ct
        LEFT JOIN (
            SELECT customer_id, meter_id, event_time, kind, quantity, credits FROM credit_ledger FINAL
            WHERE kind IN ('draw', 'uncovered')
              AND event_time >= (SELECT min(ps) FROM periods) AND event_time < (SELECT max(pe) FROM periods)
        ) AS l ON l.customer_id = ct.customer_id AND l.meter_id = ct.meter_id
        GROUP BY ct.customer_id, ct.plan_id, ct.version, ct.currency, ct.minor_units, ct.ps, ct.pe, ct.period_name,
                 ct.seg_start, ct.seg_end, ct.meter_id
    ),
    credit_lines AS (
        -- One line per plan segment (docs/catalog.md, Credits): every uncovered credit of the
        -- segment summed, priced at credit_price x overage_multiplier (overage) or 0 (pause), and
        -- rounded once, so the amount never depends on which meter's usage crossed zero first.
        -- quantity: credits consumed; billable: the uncovered ones. Breakdown per meter, sorted:
        -- (1 covered | 2 uncovered, meter, units, credits, price per credit, exact amount).
        SELECT customer_id, plan_id, version, currency, minor_units, ps, pe, period_name, seg_start, seg_end,
               false AS override, 'credits' AS line_type, 500 AS line_order, '' AS meter_id, '' AS filter_text, 'credits' AS model,
               toDecimal256(sum(covered_credits) + sum(uncovered_credits), 24) AS quantity,
               toDecimal256(sum(uncovered_credits), 24) AS billable,
               toDecimal256(sum(uncovered_credits) * any(overage_price), 24) AS amount_exact,
               arraySort(x -> (x.2, x.1), arrayFlatten(groupArray([
                   (toUInt32(1), toString(cu.meter_id), toDecimal256(units - uncovered_units, 24), covered_credits,
                    toDecimal256(0, 24), toDecimal256(0, 24)),
                   (toUInt32(2), toString(cu.meter_id), uncovered_units, uncovered_credits,
                    toDecimal256(overage_price, 24), toDecimal256(uncovered_credits * overage_price, 24))]))) AS breakdown
        FROM credit_usage AS cu
        GROUP BY customer_id, plan_id, version, currency, minor_units, ps, pe, period_name, seg_start, seg_end
    ),
    priced AS (
        SELECT *, if(minor_units = 0, round(amount_exact, 0), round(amount_exact, 2)) AS amount
        FROM (
            SELECT * FROM charge_lines
            UNION ALL SELECT * FROM base_lines
            UNION ALL SELECT * FROM credit_lines
        )
    ),
    with_minimums AS (
        -- Each segment with a minimum commitment gets a candidate line; its amount needs the
        -- segment's subtotal, a window over the same rows, so the priced lines (and the events
        -- behind them) are computed once, not once more for a join.
        SELECT *, sumIf(amount, NOT is_minimum) OVER (PARTITION BY customer_id, seg_start) AS subtotal
        FROM (
            SELECT customer_id, plan_id, version, currency, minor_units, ps, pe, period_name, seg_start, seg_end,
                   override, line_type, line_order,
                   meter_id, filter_text, model, quantity, billable, amount_exact, amount, breakdown,
                   false AS is_minimum, toDecimal256(0, 24) AS minimum_exact
            FROM priced
            UNION ALL
            SELECT customer_id, plan_id, version, currency, minor_units, ps, pe, period_name, seg_start, seg_end,
                   minimum_override, 'minimum_commitment', 1000000, '', '', '', toDecimal256(share, 24), toDecimal256(share, 24),
                   toDecimal256(0, 24), toDecimal256(0, 24),
                   CAST([], 'Array(Tuple(UInt32, String, Decimal(76, 24), Decimal(76, 24), Decimal(76, 24), Decimal(76, 24)))'),
                   true, toDecimal256(toDecimal256(assumeNotNull(minimum_commitment), 12) * share, 24)
            FROM plans
            WHERE minimum_commitment IS NOT NULL
        )
    ),
    lines AS (
        -- The true-up compares the rounded minimum with the sum of the rounded lines.
        SELECT customer_id, plan_id, version, currency, minor_units, ps, pe, period_name, seg_start, seg_end,
               override, line_type, line_order, meter_id, filter_text, model, quantity, billable,
               if(is_minimum, toDecimal256(minimum_exact - subtotal, 24), amount_exact) AS amount_exact,
               if(minor_units = 0, round(minimum_exact, 0), round(minimum_exact, 2)) AS minimum,
               if(is_minimum, toDecimal256(minimum - subtotal, 24), amount) AS amount, breakdown
        FROM with_minimums
        WHERE NOT is_minimum OR minimum > subtotal
    )
SELECT customer_id, ps AS period_start, pe AS period_end, period_name, plan_id, version, currency, minor_units,
       seg_start, seg_end, override, line_type, line_order, meter_id, filter_text, model, quantity, billable,
       amount_exact, amount, breakdown, sum(amount) OVER (PARTITION BY customer_id, ps) AS total
FROM lines
ORDER BY customer_id, period_start, seg_start, line_order
