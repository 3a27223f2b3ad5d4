package io.tallyflow.udf;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;

/**
 * Wires ClassifyEvents between two tables, called from the Python job builder through py4j:
 * Table -> DataStream of internal RowData (JVM only, no conversion) -> keyed ClassifyEvents ->
 * Table with rowtime, watermarks and a processing-time attribute. One node that every sink
 * shares, which a Flink SQL plan with nondeterministic calls cannot guarantee.
 */
public final class Classifier {
    private Classifier() {}

    public static Table classify(StreamTableEnvironment tEnv, Table decoded, long horizonMs,
                                 long allowedLatenessMs, long windowMs) {
        DataType inType = decoded.getResolvedSchema().toPhysicalRowDataType().bridgedTo(RowData.class);
        DataStream<RowData> in = tEnv.toDataStream(decoded, inType);
        List<String> names = DataType.getFieldNames(inType);
        List<DataType> types = DataType.getFieldDataTypes(inType);
        List<DataTypes.Field> fields = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            fields.add(DataTypes.FIELD(names.get(i), types.get(i)));
        }
        fields.add(DataTypes.FIELD("kind", DataTypes.STRING().notNull()));
        fields.add(DataTypes.FIELD("window_start", DataTypes.TIMESTAMP_LTZ(3)));
        fields.add(DataTypes.FIELD("payload_hash", DataTypes.BIGINT().notNull()));
        RowType outType = (RowType) DataTypes.ROW(fields.toArray(new DataTypes.Field[0])).getLogicalType();
        ClassifyEvents.Fields positions = new ClassifyEvents.Fields(names);
        DataStream<RowData> out = in
                .keyBy((KeySelector<RowData, String>) positions::key, Types.STRING)
                .process(new ClassifyEvents(horizonMs, allowedLatenessMs, windowMs, positions),
                        InternalTypeInfo.of(outType))
                .name("classify-events")
                .uid("classify-events")
                .disableChaining();
        return tEnv.fromDataStream(out, Schema.newBuilder()
                .columnByMetadata("rowtime", "TIMESTAMP_LTZ(3)")
                .watermark("rowtime", "SOURCE_WATERMARK()")
                .columnByExpression("pt", "PROCTIME()")
                .build());
    }
}
