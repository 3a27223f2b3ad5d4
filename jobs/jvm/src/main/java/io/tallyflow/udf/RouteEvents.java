package io.tallyflow.udf;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.streaming.api.functions.ProcessFunction;
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
 * kafka_offset, kafka_time). {@code accepted}, {@code late} and {@code duplicates} carry the JSON
 * document the loader lands (JSONEachRow) as v; {@code dlq} carries the original key and bytes
 * and the reason. Written here rather than by Flink's JSON format, whose tree of nodes per
 * record cost more than everything else in the job (measured, see README).
 *
 * <p>Side output {@link #METERED}, one row per accepted event and meter that counts it:
 * (customer_id, meter_id, group_key, qty, kind, window_start, event_id), the event time as the
 * record's timestamp. count and unique_count count 1 (unique values are counted over the period
 * in ClickHouse; unique_count needs the dimension present), the other aggregations take the
 * named value and skip events without it. group_key is a canonical JSON object of the meter's
 * group_by dimensions (sorted keys, absent ones omitted), the key windows and rating group by.
 */
public class RouteEvents extends ProcessFunction<RowData, RowData> {
    private static final StringData ACCEPTED = StringData.fromString("accepted");
    private static final StringData LATE = StringData.fromString("late");
    private static final StringData DUPLICATES = StringData.fromString("duplicates");
    private static final StringData DLQ = StringData.fromString("dlq");
    private static final DecimalData ONE = DecimalData.fromBigDecimal(java.math.BigDecimal.ONE, 38, 12);
    private static final StringData EMPTY_GROUP = StringData.fromString("{}");
    private static final char[] HEX = "0123456789ABCDEF".toCharArray();

    private final OutputTag<RowData> metered;
    private final In f;
    private final Map<String, List<Meter>> metersByType;
    private transient StringBuilder sb;

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

        static int at(List<String> names, String name) {
            int i = names.indexOf(name);
            if (i < 0) {
                throw new IllegalArgumentException("classified input lacks column " + name);
            }
            return i;
        }
    }

    /** One meter of the catalog, as the job builder renders it (see {@link #parseMeters}). */
    static final class Meter implements java.io.Serializable {
        final String id;
        final String aggregation;
        final String value;
        final String[] groupBy;  // sorted

        Meter(String id, String aggregation, String value, String[] groupBy) {
            this.id = id;
            this.aggregation = aggregation;
            this.value = value;
            this.groupBy = groupBy;
            Arrays.sort(this.groupBy);
        }
    }

    public RouteEvents(OutputTag<RowData> metered, In fields, String meterSpec) {
        this.metered = metered;
        this.f = fields;
        this.metersByType = parseMeters(meterSpec);
    }

    /**
     * One meter per line, fields separated by tabs, each percent-encoded: id, event_type,
     * aggregation, value (may be empty), group_by dimensions joined by commas.
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
        if (sb == null) {
            sb = new StringBuilder(512);
        }
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
                byte[] json = eventJson(in, kind);
                out.collect(sinkRow(ACCEPTED, json, in));
                if (kind.equals("too_late")) {
                    out.collect(sinkRow(LATE, json, in));
                }
                meter(in, kind, ctx);
            }
            default -> throw new IllegalStateException("unknown kind " + kind);
        }
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
            switch (m.aggregation) {
                case "count" -> qty = ONE;
                case "unique_count" -> qty = lookup(in.getMap(f.dims), m.value) == null ? null : ONE;
                default -> qty = decimal(in.getMap(f.vals), m.value);
            }
            if (qty == null) {
                continue;
            }
            if (customer == null) {
                customer = copy(in.getString(f.customer));
                kindData = StringData.fromString(kind);
                eventId = copy(in.getString(f.eventId));
            }
            ctx.output(metered, GenericRowData.of(customer, StringData.fromString(m.id), groupKey(in, m), qty,
                    kindData, in.isNullAt(f.windowStart) ? null : in.getTimestamp(f.windowStart, 3), eventId));
        }
    }

    private StringData groupKey(RowData in, Meter m) {
        if (m.groupBy.length == 0) {
            return EMPTY_GROUP;
        }
        MapData dims = in.getMap(f.dims);
        sb.setLength(0);
        sb.append('{');
        for (String dim : m.groupBy) {
            String value = lookup(dims, dim);
            if (value != null) {
                if (sb.length() > 1) {
                    sb.append(',');
                }
                quote(sb, dim).append(':');
                quote(sb, value);
            }
        }
        return StringData.fromString(sb.append('}').toString());
    }

    private static String lookup(MapData map, String key) {
        ArrayData keys = map.keyArray();
        for (int i = 0; i < map.size(); i++) {
            if (keys.getString(i).toString().equals(key)) {
                ArrayData values = map.valueArray();
                return values.isNullAt(i) ? null : values.getString(i).toString();
            }
        }
        return null;
    }

    private static DecimalData decimal(MapData map, String key) {
        ArrayData keys = map.keyArray();
        for (int i = 0; i < map.size(); i++) {
            if (keys.getString(i).toString().equals(key)) {
                ArrayData values = map.valueArray();
                return values.isNullAt(i) ? null : values.getDecimal(i, 38, 12).copy();
            }
        }
        return null;
    }

    private byte[] eventJson(RowData in, String kind) {
        sb.setLength(0);
        sb.append("{\"customer_id\":");
        quote(sb, in.getString(f.customer).toString());
        sb.append(",\"event_id\":");
        quote(sb, in.getString(f.eventId).toString());
        sb.append(",\"event_type\":");
        quote(sb, in.getString(f.eventType).toString());
        sb.append(",\"event_time\":");
        time(sb, in.getTimestamp(f.eventTime, 3).getMillisecond());
        sb.append(",\"values\":{");
        MapData vals = in.getMap(f.vals);
        ArrayData keys = vals.keyArray();
        ArrayData values = vals.valueArray();
        for (int i = 0; i < vals.size(); i++) {
            if (i > 0) {
                sb.append(',');
            }
            quote(sb, keys.getString(i).toString()).append(':');
            sb.append(values.isNullAt(i) ? "null" : values.getDecimal(i, 38, 12).toBigDecimal().toPlainString());
        }
        sb.append("},\"dimensions\":{");
        MapData dims = in.getMap(f.dims);
        keys = dims.keyArray();
        values = dims.valueArray();
        for (int i = 0; i < dims.size(); i++) {
            if (i > 0) {
                sb.append(',');
            }
            quote(sb, keys.getString(i).toString()).append(':');
            if (values.isNullAt(i)) {
                sb.append("null");
            } else {
                quote(sb, values.getString(i).toString());
            }
        }
        sb.append("},\"schema_id\":").append(in.getInt(f.schemaId));
        sb.append(",\"on_time\":").append(kind.equals("on_time"));
        sb.append(",\"lateness\":\"").append(kind).append('"');
        sb.append(",\"source_partition\":").append(in.getInt(f.partition));
        sb.append(",\"source_offset\":").append(in.getLong(f.offset)).append('}');
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    private byte[] duplicateJson(RowData in, String kind) {
        sb.setLength(0);
        sb.append("{\"customer_id\":");
        quote(sb, in.getString(f.customer).toString());
        sb.append(",\"event_id\":");
        quote(sb, in.getString(f.eventId).toString());
        sb.append(",\"event_type\":");
        quote(sb, in.getString(f.eventType).toString());
        sb.append(",\"event_time\":");
        time(sb, in.getTimestamp(f.eventTime, 3).getMillisecond());
        sb.append(",\"conflict\":").append(kind.equals("conflict"));
        sb.append(",\"payload_hash\":").append(in.getLong(f.payloadHash));
        sb.append(",\"source_partition\":").append(in.getInt(f.partition));
        sb.append(",\"source_offset\":").append(in.getLong(f.offset)).append('}');
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static StringData copy(StringData s) {
        return StringData.fromBytes(s.toBytes());
    }

    /** A JSON string with Jackson's escaping (the escaping Flink's JSON_OBJECT used). */
    static StringBuilder quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20) {
                        sb.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 0xF]);
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        return sb.append('"');
    }

    /** ISO-8601 UTC with milliseconds, e.g. "2026-10-31T23:59:59.999Z". */
    static void time(StringBuilder sb, long epochMs) {
        long days = Math.floorDiv(epochMs, 86_400_000L);
        long ms = Math.floorMod(epochMs, 86_400_000L);
        LocalDate d = LocalDate.ofEpochDay(days);
        sb.append('"');
        pad(sb, d.getYear(), 4).append('-');
        pad(sb, d.getMonthValue(), 2).append('-');
        pad(sb, d.getDayOfMonth(), 2).append('T');
        pad(sb, (int) (ms / 3_600_000), 2).append(':');
        pad(sb, (int) (ms / 60_000 % 60), 2).append(':');
        pad(sb, (int) (ms / 1000 % 60), 2).append('.');
        pad(sb, (int) (ms % 1000), 3).append("Z\"");
    }

    private static StringBuilder pad(StringBuilder sb, int v, int width) {
        String s = Integer.toString(v);
        for (int i = s.length(); i < width; i++) {
            sb.append('0');
        }
        return sb.append(s);
    }
}
