package io.tallyflow.keys;

import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.flink.api.common.functions.FilterFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.table.runtime.typeutils.ExternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.utils.LegacyTypeInfoDataTypeConverter;
import org.apache.flink.types.Row;

/**
 * Keys a stream of rows for a PyFlink keyed process function, in the JVM.
 *
 * <p>PyFlink's {@code key_by(lambda ...)} runs a Python operator on every record to compute its
 * key and costs about a thousand py4j round trips to build. This emits the same thing in Java: each
 * record as {@code Row(key, record)} (what PyFlink's keyed operators read), keyed by
 * {@code Row(key)} (what PyFlink's own KeyByKeySelector returns), so the Python function, its
 * keyed state and its key groups are exactly what they were.
 *
 * <p>The key is the named fields' text joined by U+001F (a null is the empty text); a field
 * written {@code name:n} contributes its first n characters (the billing month of a window start,
 * "yyyy-MM").
 */
public final class PythonKeys {
    static final String SEPARATOR = "\u001f";

    private PythonKeys() {}

    public static KeyedStream<Row, Row> keyed(DataStream<Row> in, String name, String... fields) {
        List<String> names = fieldNames(in);
        TypeInformation<Row> withKey = Types.ROW(Types.STRING, recordType(in));
        return in.map(new WithKey(positions(names, fields), prefixes(fields)))
                .returns(withKey)
                .name(name)
                .uid(name)
                .keyBy(new FirstField(), Types.ROW(Types.STRING));
    }

    /**
     * The rows whose key text over `fields` (as {@link #keyed} writes it) is one of `allowed`: the
     * records a Python function would only look at and drop never cross into Python.
     */
    public static DataStream<Row> among(DataStream<Row> in, String name, String[] fields, String[] allowed) {
        return in.filter(new Among(positions(fieldNames(in), fields), prefixes(fields), allowed)).name(name).uid(name);
    }

    private static List<String> fieldNames(DataStream<Row> in) {
        TypeInformation<Row> type = in.getType();
        if (type instanceof RowTypeInfo rows) {
            return List.of(rows.getFieldNames());
        }
        if (type instanceof ExternalTypeInfo<Row> external) {
            return DataType.getFieldNames(external.getDataType());
        }
        throw new IllegalArgumentException("PythonKeys keys rows, not " + type);
    }

    /**
     * The record's type inside Row(key, record): for a table's rows, the DataType after the same
     * legacy round trip PyFlink's key_by makes, so the Python operator reads what it always read.
     */
    private static TypeInformation<Row> recordType(DataStream<Row> in) {
        if (in.getType() instanceof ExternalTypeInfo<Row> external) {
            @SuppressWarnings("unchecked")
            TypeInformation<Row> legacy =
                    (TypeInformation<Row>) LegacyTypeInfoDataTypeConverter.toLegacyTypeInfo(external.getDataType());
            return ExternalTypeInfo.of(LegacyTypeInfoDataTypeConverter.toDataType(legacy));
        }
        return in.getType();
    }

    private static int[] positions(List<String> names, String[] fields) {
        int[] at = new int[fields.length];
        for (int i = 0; i < fields.length; i++) {
            String field = fields[i].split(":", 2)[0];
            at[i] = names.indexOf(field);
            if (at[i] < 0) {
                throw new IllegalArgumentException("no field '" + field + "' in " + names);
            }
        }
        return at;
    }

    private static int[] prefixes(String[] fields) {
        int[] n = new int[fields.length];
        for (int i = 0; i < fields.length; i++) {
            String[] parts = fields[i].split(":", 2);
            n[i] = parts.length == 2 ? Integer.parseInt(parts[1]) : -1;
        }
        return n;
    }

    /** The key text of a row; package-private for the tests. */
    static String key(Row row, int[] positions, int[] prefixes) {
        StringBuilder key = new StringBuilder();
        for (int i = 0; i < positions.length; i++) {
            if (i > 0) {
                key.append(SEPARATOR);
            }
            Object value = row.getField(positions[i]);
            String text = value == null ? "" : value.toString();
            key.append(prefixes[i] >= 0 && text.length() > prefixes[i] ? text.substring(0, prefixes[i]) : text);
        }
        return key.toString();
    }

    static final class WithKey implements MapFunction<Row, Row> {
        private final int[] positions;
        private final int[] prefixes;

        WithKey(int[] positions, int[] prefixes) {
            this.positions = positions;
            this.prefixes = prefixes;
        }

        @Override
        public Row map(Row row) {
            return Row.of(key(row, positions, prefixes), row);
        }
    }

    static final class FirstField implements KeySelector<Row, Row> {
        @Override
        public Row getKey(Row keyed) {
            return Row.of(keyed.getField(0));
        }
    }

    static final class Among implements FilterFunction<Row> {
        private final int[] positions;
        private final int[] prefixes;
        private final HashSet<String> allowed;

        Among(int[] positions, int[] prefixes, String[] allowed) {
            this.positions = positions;
            this.prefixes = prefixes;
            this.allowed = new HashSet<>(Arrays.asList(allowed));
        }

        @Override
        public boolean filter(Row row) {
            return allowed.contains(key(row, positions, prefixes));
        }

        Set<String> allowed() {
            return allowed;
        }
    }
}
