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
import org.apache.flink.table.runtime.typeutils.ExternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.types.Row;

/**
 * Wires ClassifyEvents between two tables, called from the Python job builder through py4j:
 * Table -> DataStream (JVM only) -> keyed ClassifyEvents -> Table with rowtime, watermarks and
 * a processing-time attribute. One node that every sink shares, which a Flink SQL plan with
 * nondeterministic calls cannot guarantee.
 */
public final class Classifier {
    private Classifier() {}

    public static Table classify(StreamTableEnvironment tEnv, Table decoded, long horizonMs,
                                 long allowedLatenessMs, long windowMs) {
        DataStream<Row> in = tEnv.toDataStream(decoded);
        DataType inType = ((ExternalTypeInfo<Row>) in.getType()).getDataType();
        List<String> names = DataType.getFieldNames(inType);
        List<DataType> types = DataType.getFieldDataTypes(inType);
        List<DataTypes.Field> fields = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            fields.add(DataTypes.FIELD(names.get(i), types.get(i)));
        }
        fields.add(DataTypes.FIELD("kind", DataTypes.STRING().notNull()));
        fields.add(DataTypes.FIELD("window_start", DataTypes.TIMESTAMP_LTZ(3)));
        fields.add(DataTypes.FIELD("payload_hash", DataTypes.BIGINT().notNull()));
        DataType outType = DataTypes.ROW(fields.toArray(new DataTypes.Field[0]));
        DataStream<Row> out = in
                .keyBy((KeySelector<Row, String>) ClassifyEvents::key, Types.STRING)
                .process(new ClassifyEvents(horizonMs, allowedLatenessMs, windowMs, names.size()),
                        ExternalTypeInfo.of(outType))
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
