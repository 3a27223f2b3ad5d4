package io.tallyflow.metrics;

import org.apache.flink.api.common.accumulators.LongMinimum;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.DataType;

/**
 * Notes the wall-clock time the job read its first event, as the accumulator {@link #ACCUMULATOR}
 * (the earliest over all subtasks), so `tallyflow bench` times a job from its first event read,
 * as the issue defines the figure, apart from planning, deployment and code generation. A pass
 * through chained to the source: one clock read per subtask, a branch per record.
 */
public class FirstEvent<T> extends RichMapFunction<T, T> {
    public static final String ACCUMULATOR = "tallyflow.first-event-ms";
    private transient LongMinimum first;
    private transient boolean seen;

    @Override
    public void open(OpenContext openContext) {
        first = new LongMinimum();
        getRuntimeContext().addAccumulator(ACCUMULATOR, first);
    }

    @Override
    public T map(T value) {
        if (!seen) {
            seen = true;
            first.add(System.currentTimeMillis());
        }
        return value;
    }

    public static <T> DataStream<T> mark(DataStream<T> in) {
        return in.map(new FirstEvent<>()).returns(in.getType()).name("first-event").uid("first-event");
    }

    /** The same, on a table (the bench's read-and-discard baseline). */
    public static Table mark(StreamTableEnvironment tEnv, Table table) {
        DataType internal = table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(RowData.class);
        return tEnv.fromDataStream(mark(tEnv.toDataStream(table, internal)));
    }
}
