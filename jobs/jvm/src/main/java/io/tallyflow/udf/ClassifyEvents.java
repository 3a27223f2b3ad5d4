package io.tallyflow.udf;

import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Deduplicates and classifies every decoded record in one keyed step (key: customer_id and
 * event_id; rejects get a key of their own and never touch state).
 *
 * <p>kind: reject | on_time | adjust (behind the watermark, its window still inside the allowed
 * lateness) | too_late | duplicate (same id, same payload) | conflict (same id, other payload).
 * The first copy of an event decides; its payload hash is remembered for the dedup horizon.
 * Lateness is judged against this operator's watermark, which no downstream operator can be
 * ahead of, so an on_time row is on time for the windows too. Counts go to Flink metrics
 * (group "tallyflow").
 */
public class ClassifyEvents extends KeyedProcessFunction<String, Row, Row> {
    private final long horizonMs;
    private final long allowedLatenessMs;
    private final long windowMs;
    private final int width;

    private transient ValueState<Long> firstHash;
    private transient MessageDigest sha;
    private transient Map<String, Counter> counters;

    public ClassifyEvents(long horizonMs, long allowedLatenessMs, long windowMs, int inputWidth) {
        this.horizonMs = horizonMs;
        this.allowedLatenessMs = allowedLatenessMs;
        this.windowMs = windowMs;
        this.width = inputWidth;
    }

    @Override
    public void open(OpenContext openContext) throws NoSuchAlgorithmException {
        ValueStateDescriptor<Long> descriptor = new ValueStateDescriptor<>("first-payload-hash", Long.class);
        descriptor.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofMillis(horizonMs))
                .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .build());
        firstHash = getRuntimeContext().getState(descriptor);
        sha = MessageDigest.getInstance("SHA-256");
        MetricGroup group = getRuntimeContext().getMetricGroup().addGroup("tallyflow");
        counters = new TreeMap<>();
        for (String name : new String[] {"events_in", "rejected", "accepted", "duplicates", "conflicts",
                "late_within_lateness", "too_late"}) {
            counters.put(name, group.counter(name));
        }
    }

    /** The key: customer_id and event_id, or the record's Kafka coordinates for a reject. */
    public static String key(Row r) {
        if (r.getField("error") != null) {
            return "\u0000reject|" + r.getField("kafka_partition") + "|" + r.getField("kafka_offset");
        }
        return r.getField("customer_id") + "\u0000" + r.getField("event_id");
    }

    @Override
    public void processElement(Row in, Context ctx, Collector<Row> out) throws Exception {
        counters.get("events_in").inc();
        if (in.getField("error") != null) {
            counters.get("rejected").inc();
            out.collect(extend(in, "reject", null, 0L));
            return;
        }
        long hash = payloadHash(in);
        Long first = firstHash.value();
        if (first != null) {
            boolean conflict = first != hash;
            counters.get(conflict ? "conflicts" : "duplicates").inc();
            out.collect(extend(in, conflict ? "conflict" : "duplicate", null, hash));
            return;
        }
        firstHash.update(hash);
        counters.get("accepted").inc();
        long ts = ((Instant) in.getField("event_time")).toEpochMilli();
        long windowStart = ts - Math.floorMod(ts, windowMs);
        long watermark = ctx.timerService().currentWatermark();
        String kind;
        if (ts > watermark) {
            kind = "on_time";
        } else if (windowStart + windowMs - 1 + allowedLatenessMs > watermark) {
            kind = "adjust";
            counters.get("late_within_lateness").inc();
        } else {
            kind = "too_late";
            counters.get("too_late").inc();
        }
        out.collect(extend(in, kind, Instant.ofEpochMilli(windowStart), hash));
    }

    private Row extend(Row in, String kind, Instant windowStart, long hash) {
        Row out = new Row(in.getKind(), width + 3);
        for (int i = 0; i < width; i++) {
            out.setField(i, in.getField(i));
        }
        out.setField(width, kind);
        out.setField(width + 1, windowStart);
        out.setField(width + 2, hash);
        return out;
    }

    /** SHA-256 (first 8 bytes) of the event's billable content: type, time, values, dimensions. */
    private long payloadHash(Row r) {
        StringBuilder sb = new StringBuilder();
        sb.append(r.getField("event_type")).append('\u0001').append(((Instant) r.getField("event_time")).toEpochMilli());
        @SuppressWarnings("unchecked")
        Map<String, BigDecimal> vals = (Map<String, BigDecimal>) r.getField("vals");
        for (Map.Entry<String, BigDecimal> e : new TreeMap<>(vals).entrySet()) {
            sb.append('\u0001').append(e.getKey()).append('=').append(e.getValue().stripTrailingZeros().toPlainString());
        }
        sb.append('\u0002');
        @SuppressWarnings("unchecked")
        Map<String, String> dims = (Map<String, String>) r.getField("dims");
        for (Map.Entry<String, String> e : new TreeMap<>(dims).entrySet()) {
            sb.append('\u0001').append(e.getKey()).append('=').append(e.getValue());
        }
        sha.reset();
        return ByteBuffer.wrap(sha.digest(sb.toString().getBytes(StandardCharsets.UTF_8))).getLong();
    }
}
