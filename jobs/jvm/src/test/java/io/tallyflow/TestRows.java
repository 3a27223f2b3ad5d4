package io.tallyflow;

import java.math.BigDecimal;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.GenericMapData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;

/** Rows as the decoded table hands them to the classifier (the columns of stream/graph.py's `decoded`). */
public final class TestRows {
    public static final List<String> DECODED = List.of("error", "schema_id", "event_id", "customer_id", "event_type",
            "event_time", "vals", "dims", "k", "v", "kafka_partition", "kafka_offset", "kafka_time");
    /** The classifier's output columns: the decoded ones, then kind, window_start, payload_hash. */
    public static final List<String> CLASSIFIED;

    static {
        List<String> names = new ArrayList<>(DECODED);
        names.addAll(List.of("kind", "window_start", "payload_hash"));
        CLASSIFIED = List.copyOf(names);
    }

    private TestRows() {}

    public static long ms(String iso) {
        return Instant.parse(iso).toEpochMilli();
    }

    /** An accepted (decoded, valid) event. */
    public static GenericRowData event(String customer, String id, String type, String time, Map<String, String> values,
                                       Map<String, String> dims, long offset) {
        Map<StringData, DecimalData> vals = new HashMap<>();
        values.forEach((k, v) -> vals.put(StringData.fromString(k),
                DecimalData.fromBigDecimal(new BigDecimal(v).setScale(12), 38, 12)));
        Map<StringData, StringData> ds = new HashMap<>();
        dims.forEach((k, v) -> ds.put(StringData.fromString(k), StringData.fromString(v)));
        return GenericRowData.of(null, 1002, StringData.fromString(id), StringData.fromString(customer),
                StringData.fromString(type), TimestampData.fromEpochMillis(ms(time)), new GenericMapData(vals),
                new GenericMapData(ds), null, null, 0, offset, TimestampData.fromEpochMillis(ms(time)));
    }

    /** A record the decoder rejected. */
    public static GenericRowData reject(String reason, long offset) {
        return GenericRowData.of(StringData.fromString(reason), null, null, null, null, null, null, null,
                new byte[] {1}, new byte[] {2, 3}, 0, offset, TimestampData.fromEpochMillis(0));
    }

    public static String kind(RowData classified) {
        return classified.getString(CLASSIFIED.indexOf("kind")).toString();
    }
}
