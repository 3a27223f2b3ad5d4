package io.tallyflow.credits;

import io.tallyflow.json.JsonBytes;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;

/**
 * Micro-batches credit-priced usage in the JVM, so the drawdown (Python, per customer) is called
 * once per customer and flush instead of once per event.
 *
 * <p>Input: (customer_id, meter_id, qty DECIMAL(38, 12), event_time TIMESTAMP_LTZ(3)). Output: one
 * row per customer in the batch, (record "usage", customer_id, batch), where batch is a JSON array
 * with one entry per meter and event-time second, in the order they first arrived:
 * [meter_id, second (epoch ms), quantity (exact decimal text), first event time, last event time].
 * A second is the finest unit grant validity is judged at (grant times are whole seconds, as in
 * Stripe), so an entry never straddles a grant's start or expiry. One Python call per customer
 * reads and writes that customer's state once, however many meters and seconds the batch holds.
 *
 * <p>The buffer lives on the heap, not in Flink state: it is flushed every flush interval, before
 * every checkpoint barrier (prepareSnapshotPreBarrier) and at the end of input, so a checkpoint
 * never holds an unflushed batch and a restore replays exactly what was not yet drawn.
 */
public class CreditBatcher extends AbstractStreamOperator<RowData>
        implements OneInputStreamOperator<RowData, RowData>, ProcessingTimeCallback {
    private static final StringData USAGE = StringData.fromString("usage");
    private final long flushMs;
    private transient Map<String, Acc> buffer;
    private transient boolean timerSet;
    private transient JsonBytes json;

    private static final class Acc {
        final StringData customer;
        final StringData meter;
        final long second;
        BigDecimal quantity = BigDecimal.ZERO;
        long first = Long.MAX_VALUE;
        long last = Long.MIN_VALUE;

        Acc(StringData customer, StringData meter, long second) {
            this.customer = customer;
            this.meter = meter;
            this.second = second;
        }
    }

    public CreditBatcher(long flushMs) {
        this.flushMs = flushMs;
    }

    @Override
    public void open() throws Exception {
        super.open();
        buffer = new LinkedHashMap<>();
        json = new JsonBytes();
    }

    @Override
    public void processElement(StreamRecord<RowData> element) {
        RowData r = element.getValue();
        long ts = r.getTimestamp(3, 3).getMillisecond();
        long second = ts - Math.floorMod(ts, 1000L);
        StringData customer = r.getString(0);
        StringData meter = r.getString(1);
        String key = customer + "\u0000" + meter + "\u0000" + second;
        Acc acc = buffer.get(key);
        if (acc == null) {
            // Strings of a reused input row must not be kept: copy them.
            acc = new Acc(StringData.fromString(customer.toString()), StringData.fromString(meter.toString()), second);
            buffer.put(key, acc);
        }
        acc.quantity = acc.quantity.add(r.getDecimal(2, 38, 12).toBigDecimal());
        acc.first = Math.min(acc.first, ts);
        acc.last = Math.max(acc.last, ts);
        if (!timerSet) {
            timerSet = true;
            getProcessingTimeService().registerTimer(getProcessingTimeService().getCurrentProcessingTime() + flushMs, this);
        }
    }

    @Override
    public void onProcessingTime(long time) {
        timerSet = false;
        flush();
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        flush();
    }

    @Override
    public void finish() throws Exception {
        flush();
        super.finish();
    }

    private void flush() {
        Map<StringData, List<Acc>> byCustomer = new LinkedHashMap<>();
        for (Acc acc : buffer.values()) {
            byCustomer.computeIfAbsent(acc.customer, c -> new ArrayList<>()).add(acc);
        }
        for (Map.Entry<StringData, List<Acc>> e : byCustomer.entrySet()) {
            json.reset().ch('[');
            for (Acc acc : e.getValue()) {
                if (json.length() > 1) {
                    json.ch(',');
                }
                json.ch('[').string(acc.meter).ch(',').number(acc.second).ch(',').ch('"')
                        .raw(acc.quantity.toPlainString()).raw("\",").number(acc.first).ch(',').number(acc.last).ch(']');
            }
            output.collect(new StreamRecord<>(GenericRowData.of(USAGE, e.getKey(),
                    StringData.fromBytes(json.ch(']').toBytes()))));
        }
        buffer.clear();
    }

    /** Wires the batcher between two tables; called from the Python job builder through py4j. */
    public static Table batch(StreamTableEnvironment tEnv, Table usage, long flushMs) {
        DataType inType = usage.getResolvedSchema().toPhysicalRowDataType().bridgedTo(RowData.class);
        DataStream<RowData> in = tEnv.toDataStream(usage, inType);
        RowType outType = (RowType) DataTypes.ROW(
                DataTypes.FIELD("record", DataTypes.STRING().notNull()),
                DataTypes.FIELD("customer_id", DataTypes.STRING()),
                DataTypes.FIELD("batch", DataTypes.STRING())).getLogicalType();
        DataStream<RowData> out = in
                .transform("credit-batches", InternalTypeInfo.of(outType), new CreditBatcher(flushMs))
                .uid("credit-batches");
        return tEnv.fromDataStream(out);
    }
}
