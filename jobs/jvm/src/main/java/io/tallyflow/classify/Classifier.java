package io.tallyflow.classify;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.util.OutputTag;
import io.tallyflow.metrics.FirstEvent;
import io.tallyflow.route.RouteEvents;

/**
 * Wires the per-event JVM steps between the decoded table and the tables the job builder declares
 * its sinks and windows on, called from Python through py4j:
 *
 * <pre>
 * decoded Table -> DataStream of internal RowData (no conversion) -> keyed ClassifyEvents
 *   -> RouteEvents -> sink records (JSON bytes, rejects)   -> Table `routed`
 *                  -> side output: one row per event and meter -> Table `metered` (rowtime, watermarks, pt)
 * </pre>
 *
 * One node that every sink shares, which a Flink SQL plan with nondeterministic calls cannot
 * guarantee, and no per-sink or per-meter SQL over every event.
 */
public final class Classifier {
    private Classifier() {}

    /** The two tables of a classified and routed stream. */
    public record Routed(Table routed, Table metered) {}

    public static Routed classify(StreamTableEnvironment tEnv, Table decoded, long horizonMs,
                                  long allowedLatenessMs, long windowMs, String meterSpec) {
        DataType inType = decoded.getResolvedSchema().toPhysicalRowDataType().bridgedTo(RowData.class);
        DataStream<RowData> in = FirstEvent.mark(tEnv.toDataStream(decoded, inType));
        List<String> names = new ArrayList<>(DataType.getFieldNames(inType));
        List<DataType> types = new ArrayList<>(DataType.getFieldDataTypes(inType));
        names.addAll(List.of("kind", "window_start", "payload_hash"));
        types.addAll(List.of(DataTypes.STRING().notNull(), DataTypes.TIMESTAMP_LTZ(3), DataTypes.BIGINT().notNull()));
        ClassifyEvents.Fields positions = new ClassifyEvents.Fields(names);
        DataStream<RowData> classified = in
                .keyBy((KeySelector<RowData, String>) positions::key, Types.STRING)
                .transform("classify-events", rowType(names, types),
                        new ClassifyEvents.Operator(new ClassifyEvents(horizonMs, allowedLatenessMs, windowMs, positions)))
                .uid("classify-events");

        InternalTypeInfo<RowData> meteredType = rowType(
                List.of("customer_id", "meter_id", "group_key", "qty", "kind", "window_start", "event_id"),
                List.of(DataTypes.STRING(), DataTypes.STRING(), DataTypes.STRING(), DataTypes.DECIMAL(38, 12),
                        DataTypes.STRING(), DataTypes.TIMESTAMP_LTZ(3), DataTypes.STRING()));
        OutputTag<RowData> meteredTag = new OutputTag<>("metered", meteredType);
        SingleOutputStreamOperator<RowData> routed = classified
                .transform("route-events", rowType(
                        List.of("sink", "k", "v", "reason", "kafka_partition", "kafka_offset", "kafka_time"),
                        List.of(DataTypes.STRING(), DataTypes.BYTES(), DataTypes.BYTES(), DataTypes.STRING(),
                                DataTypes.INT(), DataTypes.BIGINT(), DataTypes.TIMESTAMP_LTZ(3))),
                        new RouteEvents.Operator(new RouteEvents(meteredTag, new RouteEvents.In(names), meterSpec)))
                .uid("route-events");
        return new Routed(
                tEnv.fromDataStream(routed),
                tEnv.fromDataStream(routed.getSideOutput(meteredTag), Schema.newBuilder()
                        .columnByMetadata("rowtime", "TIMESTAMP_LTZ(3)")
                        .watermark("rowtime", "SOURCE_WATERMARK()")
                        .columnByExpression("pt", "PROCTIME()")
                        .build()));
    }

    private static InternalTypeInfo<RowData> rowType(List<String> names, List<DataType> types) {
        List<DataTypes.Field> fields = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            fields.add(DataTypes.FIELD(names.get(i), types.get(i)));
        }
        return InternalTypeInfo.of((RowType) DataTypes.ROW(fields.toArray(new DataTypes.Field[0])).getLogicalType());
    }
}
