-- tf_version_in_force: the plan version in force for usage at `at` in the billing period that
-- starts at `period_start` (docs/catalog.md, Versions). The SQL home of the rule whose Python
-- home is tallyflow.core.plans.version_in_force; tests/vectors/versions.json holds both to the
-- same answers, versions starting mid-month included.
--   The highest version effective at the period start (apply: next_period and immediately), or
--   one with apply: immediately effective by `at`; a plan whose first version starts inside the
--   period uses that first version.
-- Arguments: parallel arrays of one plan's versions, effective_from and apply, then the period
-- start and the instant. No engine, ORDER BY or PARTITION: a function, replaced on every migration.
CREATE OR REPLACE FUNCTION tf_version_in_force AS (versions, effective, applies, period_start, at) ->
    if(arrayExists((v, e, a) -> e <= period_start OR (a = 'immediately' AND e <= at), versions, effective, applies),
       arrayMax(arrayFilter((v, e, a) -> e <= period_start OR (a = 'immediately' AND e <= at),
                            versions, effective, applies)),
       arrayMin(versions))
