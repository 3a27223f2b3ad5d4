package io.tallyflow.route;

import io.tallyflow.classify.ClassifyEvents;
import io.tallyflow.json.JsonBytes;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.streaming.api.operators.ProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Everything the sinks and the meters need from a classified record, in one pass in the JVM.
 *
 * <p>Main output, one row per record a sink takes: (sink, k, v, reason, kafka_partition,
 * kafka_offset, kafka_time). {@code late} and {@code duplicates} carry the JSON document the
 * loader lands (JSONEachRow) as v; {@code dlq} carries the original key and bytes and the reason.
 * Written here rather than by Flink's JSON format, whose tree of nodes per record cost more than
 * everything else in the job (measured, docs/performance.md).
 *
 * <p>{@code accepted}, one document for every accepted event, travels in blocks: documents
 * separated by newlines (JSONEachRow as it is; a document never holds a raw newline), up to
 * {@link #BLOCK_BYTES} a Kafka record, so the broker, the Kafka sink and the loader handle a
 * record per block instead of per event. A block is emitted when the next document would
 * overflow it, and by {@link Operator} before every checkpoint barrier and at the end of input,
 * so a checkpoint never holds half a block and nothing waits past the checkpoint that makes it
 * visible (the sink is transactional: records are read only once their checkpoint completes).
 *
 * <p>Side output {@link #METERED}, one row per accepted event and meter that counts it:
 * (customer_id, meter_id, group_key, qty, kind, window_start, event_id), the event time as the
 * record's timestamp. What a row carries follows the meter's per-event rule, which the job builder
 * takes from the aggregation registry (jobs/tallyflow/core/aggregations.py): ONE (count),
 * ONE_IF_DIMENSION (unique_count: unique values are counted over the period in ClickHouse) or
 * VALUE (the named value; events without it are skipped). group_key is a canonical JSON object of the meter's
 * group_by dimensions (sorted keys, absent ones omitted), the key windows and rating group by.
 */
public class RouteEvents extends ProcessFunction<RowData, RowData> {
    private static final StringData ACCEPTED = StringData.fromString("accepted");
    private static final StringData LATE = StringData.fromString("late");
    private static final StringData DUPLICATES = StringData.fromString("duplicates");
    private static final StringData DLQ = StringData.fromString("dlq");
    private static final DecimalData ONE_UNIT = DecimalData.fromBigDecimal(java.math.BigDecimal.ONE, 38, 12);
    private static final StringData EMPTY_GROUP = StringData.fromString("{}");
    /** The most a block of accepted documents holds (one larger document is a block of its own):
     * half the Kafka producer's default max.request.size (1 MiB), the sinks' batch.size. */
    public static final int BLOCK_BYTES = 512 * 1024;

    private final OutputTag<RowData> metered;
    private final In f;
    private final String meterSpec;
    private transient Map<String, List<Meter>> metersByType;
    private transient JsonBytes json;
    private transient JsonBytes block;

    /** Positions of the classified columns this function reads. */
    public static final class In implements java.io.Serializable {
        final int error, customer, eventId, eventType, eventTime, vals, dims, schemaId, k, v;
        final int partition, offset, kafkaTime, kind, windowStart, payloadHash;

        public In(List<String> names) {
            error = at(names, "error");
            customer = at(names, "customer_id");
            eventId = at(names, "event_id");
            eventType = at(names, "event_type");
            eventTime = at(names, "event_time");
            vals = at(names, "vals");
            dims = at(names, "dims");
            schemaId = at(names, "schema_id");
            k = at(names, "k");
            v = at(names, "v");
            partition = at(names, "kafka_partition");
            offset = at(names, "kafka_offset");
            kafkaTime = at(names, "kafka_time");
            kind = at(names, "kind");
            windowStart = at(names, "window_start");
            payloadHash = at(names, "payload_hash");
        }

        private static int at(List<String> names, String name) {
            return ClassifyEvents.Fields.at(names, name);
        }
    }

    /** What the router emits per event of a meter (core/aggregations.py `per_event`, in the meter spec). */
    public enum PerEvent { ONE, ONE_IF_DIMENSION, VALUE }

    /** One meter of the catalog, as the job builder renders it (see {@link #parseMeters}). */
    static final class Meter {
        final StringData id;
        final PerEvent perEvent;
        final StringData value;
        final StringData[] groupBy;  // sorted by name

        Meter(String id, String perEvent, String value, String[] groupBy) {
            Arrays.sort(groupBy);
            this.id = StringData.fromString(id);
            this.perEvent = PerEvent.valueOf(perEvent.toUpperCase(java.util.Locale.ROOT));
            this.value = value == null ? null : StringData.fromString(value);
            this.groupBy = Arrays.stream(groupBy).map(StringData::fromString).toArray(StringData[]::new);
        }
    }

    public RouteEvents(OutputTag<RowData> metered, In fields, String meterSpec) {
        this.metered = metered;
        this.f = fields;
        this.meterSpec = meterSpec;
        parseMeters(meterSpec);  // a bad spec fails while the job is built, not in a task
    }

    @Override
    public void open(OpenContext openContext) {
        metersByType = parseMeters(meterSpec);
        json = new JsonBytes();
        block = new JsonBytes();
    }

    /**
     * One meter per line, fields separated by tabs, each percent-encoded: id, event_type, the
     * per-event rule (one | one_if_dimension | value), value (may be empty), group_by dimensions
     * joined by commas.
     */
    static Map<String, List<Meter>> parseMeters(String spec) {
        Map<String, List<Meter>> out = new HashMap<>();
        for (String line : spec.split("\n")) {
            if (line.isEmpty()) {
                continue;
            }
            String[] p = line.split("\t", -1);
            if (p.length != 5) {
                throw new IllegalArgumentException("meter spec line has " + p.length + " fields, not 5: " + line);
            }
            String[] groupBy = p[4].isEmpty() ? new String[0] : p[4].split(",");
            for (int i = 0; i < groupBy.length; i++) {
                groupBy[i] = decode(groupBy[i]);
            }
            String value = decode(p[3]);
            out.computeIfAbsent(decode(p[1]), t -> new ArrayList<>())
                    .add(new Meter(decode(p[0]), decode(p[2]), value.isEmpty() ? null : value, groupBy));
        }
        return out;
    }

    private static String decode(String s) {
        return URLDecoder.decode(s, StandardCharsets.UTF_8);
    }

    @Override
    public void processElement(RowData in, Context ctx, Collector<RowData> out) {
        if (!in.isNullAt(f.error)) {
            out.collect(GenericRowData.of(DLQ, in.isNullAt(f.k) ? null : in.getBinary(f.k),
                    in.isNullAt(f.v) ? null : in.getBinary(f.v), copy(in.getString(f.error)),
                    in.getInt(f.partition), in.getLong(f.offset), in.getTimestamp(f.kafkaTime, 3)));
            return;
        }
        String kind = in.getString(f.kind).toString();
        switch (kind) {
            case "duplicate", "conflict" -> out.collect(sinkRow(DUPLICATES, duplicateJson(in, kind), in));
            case "on_time", "adjust", "too_late" -> {
                JsonBytes doc = eventJson(in, kind);
                if (block.length() > 0 && block.length() + 1 + doc.length() > BLOCK_BYTES) {
                    out.collect(takeBlock());
                }
                if (block.length() > 0) {
                    block.ch('\n');
                }
                block.append(doc);
                if (kind.equals("too_late")) {
                    out.collect(sinkRow(LATE, doc.toBytes(), in));
                }
                meter(in, kind, ctx);
            }
            default -> throw new IllegalStateException("unknown kind " + kind);
        }
    }

    /** The accepted documents buffered so far as one sink row, or null when there are none. */
    RowData takeBlock() {
        if (block.length() == 0) {
            return null;
        }
        RowData row = GenericRowData.of(ACCEPTED, null, block.toBytes(), null, null, null, null);
        block.reset();
        return row;
    }

    private GenericRowData sinkRow(StringData sink, byte[] json, RowData in) {
        return GenericRowData.of(sink, null, json, null, in.getInt(f.partition), in.getLong(f.offset), null);
    }

    private void meter(RowData in, String kind, Context ctx) {
        List<Meter> meters = metersByType.get(in.getString(f.eventType).toString());
        if (meters == null) {
            return;
        }
        StringData customer = null;
        StringData kindData = null;
        StringData eventId = null;
        for (Meter m : meters) {
            DecimalData qty;
            switch (m.perEvent) {
                case ONE -> qty = ONE_UNIT;
                case ONE_IF_DIMENSION -> qty = find(in.getMap(f.dims), m.value) < 0 ? null : ONE_UNIT;
                case VALUE -> {
                    MapData vals = in.getMap(f.vals);
                    int i = find(vals, m.value);
                    qty = i < 0 ? null : vals.valueArray().getDecimal(i, 38, 12).copy();
                }
                default -> throw new IllegalStateException("unknown per-event rule " + m.perEvent);
            }
            if (qty == null) {
                continue;
            }
            if (customer == null) {
                customer = copy(in.getString(f.customer));
                kindData = StringData.fromString(kind);
                eventId = copy(in.getString(f.eventId));
            }
            ctx.output(metered, GenericRowData.of(customer, m.id, groupKey(in, m), qty,
                    kindData, in.isNullAt(f.windowStart) ? null : in.getTimestamp(f.windowStart, 3), eventId));
        }
    }

    private StringData groupKey(RowData in, Meter m) {
        if (m.groupBy.length == 0) {
            return EMPTY_GROUP;
        }
        MapData dims = in.getMap(f.dims);
        json.reset().ch('{');
        for (StringData dim : m.groupBy) {
            int i = find(dims, dim);
            if (i >= 0 && !dims.valueArray().isNullAt(i)) {
                if (json.length() > 1) {
                    json.ch(',');
                }
                json.string(dim).ch(':').string(dims.valueArray().getString(i));
            }
        }
        return StringData.fromBytes(json.ch('}').toBytes());
    }

    /** The position of key in map, or -1 (compared as UTF-8 bytes, nothing decoded). */
    private static int find(MapData map, StringData key) {
        ArrayData keys = map.keyArray();
        for (int i = 0; i < map.size(); i++) {
            if (key.equals(keys.getString(i))) {
                return i;
            }
        }
        return -1;
    }

    /** The fields every event document starts with: customer, id, type and event time. */
    private JsonBytes eventHead(RowData in) {
        return json.reset().raw("{\"customer_id\":").string(in.getString(f.customer))
                .raw(",\"event_id\":").string(in.getString(f.eventId))
                .raw(",\"event_type\":").string(in.getString(f.eventType))
                .raw(",\"event_time\":").time(in.getTimestamp(f.eventTime, 3).getMillisecond());
    }

    private JsonBytes eventJson(RowData in, String kind) {
        eventHead(in).raw(",\"values\":{");
        MapData vals = in.getMap(f.vals);
        ArrayData keys = vals.keyArray();
        ArrayData values = vals.valueArray();
        for (int i = 0; i < vals.size(); i++) {
            if (i > 0) {
                json.ch(',');
            }
            json.string(keys.getString(i)).ch(':');
            if (values.isNullAt(i)) {
                json.raw("null");
            } else {
                json.decimal(values.getDecimal(i, 38, 12));
            }
        }
        json.raw("},\"dimensions\":{");
        MapData dims = in.getMap(f.dims);
        keys = dims.keyArray();
        values = dims.valueArray();
        for (int i = 0; i < dims.size(); i++) {
            if (i > 0) {
                json.ch(',');
            }
            json.string(keys.getString(i)).ch(':');
            if (values.isNullAt(i)) {
                json.raw("null");
            } else {
                json.string(values.getString(i));
            }
        }
        return json.raw("},\"schema_id\":").number(in.getInt(f.schemaId))
                .raw(",\"on_time\":").bool(kind.equals("on_time"))
                .raw(",\"lateness\":\"").raw(kind).ch('"')
                .raw(",\"source_partition\":").number(in.getInt(f.partition))
                .raw(",\"source_offset\":").number(in.getLong(f.offset)).ch('}');
    }

    private byte[] duplicateJson(RowData in, String kind) {
        return eventHead(in).raw(",\"conflict\":").bool(kind.equals("conflict"))
                .raw(",\"payload_hash\":").number(in.getLong(f.payloadHash))
                .raw(",\"source_partition\":").number(in.getInt(f.partition))
                .raw(",\"source_offset\":").number(in.getLong(f.offset)).ch('}').toBytes();
    }

    /**
     * The operator around RouteEvents: emits the block of accepted documents before every
     * checkpoint barrier (a block lives on the heap, never in a checkpoint, so a restore replays
     * exactly what no committed block holds) and at the end of input.
     */
    public static final class Operator extends ProcessOperator<RowData, RowData> {
        private static final long serialVersionUID = 1L;
        private final RouteEvents route;

        public Operator(RouteEvents route) {
            super(route);
            this.route = route;
        }

        @Override
        public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
            super.prepareSnapshotPreBarrier(checkpointId);
            emitBlock();
        }

        @Override
        public void finish() throws Exception {
            emitBlock();
            super.finish();
        }

        private void emitBlock() {
            RowData block = route.takeBlock();
            if (block != null) {
                output.collect(new StreamRecord<>(block));
            }
        }
    }

    private static StringData copy(StringData s) {
        return StringData.fromBytes(s.toBytes());
    }
}
