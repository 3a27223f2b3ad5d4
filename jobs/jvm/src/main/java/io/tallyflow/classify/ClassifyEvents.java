package io.tallyflow.classify;

import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.data.utils.JoinedRowData;
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
 *
 * <p>The watermark a run reached is kept in its checkpoints and savepoints (union operator state)
 * and is the floor of the next run's verdicts: a run that continues another's state judges a late
 * event as the first would have, instead of as on time against a watermark that starts over.
 * The floor is the watermark this operator held at the barrier, told by {@link Operator}, not the
 * last one an event was judged against: the windows downstream restore the watermark they held at
 * the same barrier and drop what is behind it, so an event judged on time against a lower floor
 * would be lost to them. The end-of-input watermark (Long.MAX_VALUE, a draining stop) is not a
 * watermark events reached.
 *
 * <p>Works on Flink's internal RowData on both sides, so no event is converted to and from
 * external Row objects (two maps per event) on its way through.
 */
public class ClassifyEvents extends KeyedProcessFunction<String, RowData, RowData>
        implements CheckpointedFunction {
    /** What a record is, the `kind` column this operator appends (an index into KINDS). */
    public static final int REJECT = 0, ON_TIME = 1, ADJUST = 2, TOO_LATE = 3, DUPLICATE = 4, CONFLICT = 5;
    private static final StringData[] KINDS = {
        StringData.fromString("reject"), StringData.fromString("on_time"), StringData.fromString("adjust"),
        StringData.fromString("too_late"), StringData.fromString("duplicate"), StringData.fromString("conflict")};
    private final long horizonMs;
    private final long allowedLatenessMs;
    private final long windowMs;
    private final Fields f;

    /** Positions of the input columns this operator reads. */
    public static final class Fields implements java.io.Serializable {
        public final int error, customer, eventId, eventType, eventTime, vals, dims, partition, offset;

        public Fields(List<String> names) {
            error = at(names, "error");
            customer = at(names, "customer_id");
            eventId = at(names, "event_id");
            eventType = at(names, "event_type");
            eventTime = at(names, "event_time");
            vals = at(names, "vals");
            dims = at(names, "dims");
            partition = at(names, "kafka_partition");
            offset = at(names, "kafka_offset");
        }

        public static int at(List<String> names, String name) {
            int i = names.indexOf(name);
            if (i < 0) {
                throw new IllegalArgumentException("job input lacks column " + name);
            }
            return i;
        }

        /** The key: customer_id and event_id, or the record's Kafka coordinates for a reject. */
        public String key(RowData r) {
            if (!r.isNullAt(error)) {
                return "\u0000reject|" + r.getInt(partition) + "|" + r.getLong(offset);
            }
            return r.getString(customer) + "\u0000" + r.getString(eventId);
        }
    }

    private transient ValueState<Long> firstHash;
    private transient MessageDigest sha;
    // The operator's Flink counters (group `tallyflow`), each resolved once in open().
    private transient Counter eventsIn, rejected, accepted, duplicates, conflicts, lateWithinLateness, tooLate;
    private transient ListState<Long> floorState;
    private transient long floor; // the highest watermark an earlier run reached
    private transient long reached; // the highest real watermark this run holds

    public ClassifyEvents(long horizonMs, long allowedLatenessMs, long windowMs, Fields fields) {
        this.horizonMs = horizonMs;
        this.allowedLatenessMs = allowedLatenessMs;
        this.windowMs = windowMs;
        this.f = fields;
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
        eventsIn = group.counter("events_in");
        rejected = group.counter("rejected");
        accepted = group.counter("accepted");
        duplicates = group.counter("duplicates");
        conflicts = group.counter("conflicts");
        lateWithinLateness = group.counter("late_within_lateness");
        tooLate = group.counter("too_late");
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        floorState = context.getOperatorStateStore()
                .getUnionListState(new ListStateDescriptor<>("watermark-floor", Long.class));
        floor = Long.MIN_VALUE;
        for (Long w : floorState.get()) {
            floor = Math.max(floor, w);
        }
        reached = floor;
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        floorState.update(List.of(reached));
    }

    @Override
    public void processElement(RowData in, Context ctx, Collector<RowData> out) throws Exception {
        eventsIn.inc();
        if (!in.isNullAt(f.error)) {
            rejected.inc();
            out.collect(extend(in, REJECT, null, 0L));
            return;
        }
        long hash = payloadHash(in);
        Long first = firstHash.value();
        if (first != null) {
            boolean conflict = first != hash;
            (conflict ? conflicts : duplicates).inc();
            out.collect(extend(in, conflict ? CONFLICT : DUPLICATE, null, hash));
            return;
        }
        firstHash.update(hash);
        accepted.inc();
        long ts = in.getTimestamp(f.eventTime, 3).getMillisecond();
        long windowStart = ts - Math.floorMod(ts, windowMs);
        long watermark = Math.max(ctx.timerService().currentWatermark(), floor);
        int kind;
        if (ts > watermark) {
            kind = ON_TIME;
        } else if (windowStart + windowMs - 1 + allowedLatenessMs > watermark) {
            kind = ADJUST;
            lateWithinLateness.inc();
        } else {
            kind = TOO_LATE;
            tooLate.inc();
        }
        out.collect(extend(in, kind, TimestampData.fromEpochMillis(windowStart), hash));
    }

    /** A watermark reached this operator (before its timers and downstream see it). */
    void watermark(long timestamp) {
        if (timestamp != Long.MAX_VALUE && timestamp > reached) {
            reached = timestamp;
        }
    }

    /**
     * The keyed process operator around ClassifyEvents. It tells the function every watermark (a
     * function sees the watermark only inside processElement, and the floor must not lag behind
     * the barrier's), and it ends event time at the end of the input.
     *
     * <p>Why the latter: a source with no new record for the idle timeout announces itself idle,
     * and Flink's outputs drop every watermark while idle, the end-of-input watermark of a
     * draining stop too. The last hour's windows then never fired. The end of the input (endInput:
     * a draining stop or a bounded source's end, never a stop that keeps windows open) is the end
     * of event time, so this operator says so itself, after announcing its output active.
     */
    public static final class Operator extends KeyedProcessOperator<String, RowData, RowData>
            implements BoundedOneInput {
        private static final long serialVersionUID = 1L;
        private final ClassifyEvents classify;
        private transient boolean idle;
        private transient boolean ended;

        public Operator(ClassifyEvents function) {
            super(function);
            this.classify = function;
        }

        @Override
        public void processWatermark(Watermark mark) throws Exception {
            classify.watermark(mark.getTimestamp());
            ended |= mark.getTimestamp() == Long.MAX_VALUE;
            super.processWatermark(mark);
        }

        @Override
        public void processWatermarkStatus(WatermarkStatus status) throws Exception {
            idle = status.isIdle();
            super.processWatermarkStatus(status);
        }

        @Override
        public void endInput() throws Exception {
            if (ended) {
                return;
            }
            if (idle) {
                idle = false;
                output.emitWatermarkStatus(WatermarkStatus.ACTIVE);
            }
            processWatermark(Watermark.MAX_WATERMARK);
        }
    }

    private static RowData extend(RowData in, int kind, TimestampData windowStart, long hash) {
        return new JoinedRowData(in.getRowKind(), in, GenericRowData.of(KINDS[kind], windowStart, hash));
    }

    /** SHA-256 (first 8 bytes) of the event's billable content: type, time, values, dimensions. */
    private long payloadHash(RowData r) {
        StringBuilder sb = new StringBuilder();
        sb.append(r.getString(f.eventType)).append('\u0001').append(r.getTimestamp(f.eventTime, 3).getMillisecond());
        MapData vals = r.getMap(f.vals);
        TreeMap<String, String> sorted = new TreeMap<>();
        ArrayData keys = vals.keyArray();
        ArrayData values = vals.valueArray();
        for (int i = 0; i < vals.size(); i++) {
            BigDecimal v = values.getDecimal(i, 38, 12).toBigDecimal();
            sorted.put(keys.getString(i).toString(), v.stripTrailingZeros().toPlainString());
        }
        append(sb, sorted);
        sb.append('\u0002');
        MapData dims = r.getMap(f.dims);
        sorted.clear();
        keys = dims.keyArray();
        values = dims.valueArray();
        for (int i = 0; i < dims.size(); i++) {
            sorted.put(keys.getString(i).toString(), values.getString(i).toString());
        }
        append(sb, sorted);
        sha.reset();
        return ByteBuffer.wrap(sha.digest(sb.toString().getBytes(StandardCharsets.UTF_8))).getLong();
    }

    private static void append(StringBuilder sb, Map<String, String> sorted) {
        for (Map.Entry<String, String> e : sorted.entrySet()) {
            sb.append('\u0001').append(e.getKey()).append('=').append(e.getValue());
        }
    }
}
