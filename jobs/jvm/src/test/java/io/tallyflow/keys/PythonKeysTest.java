package io.tallyflow.keys;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.runtime.typeutils.ExternalTypeInfo;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/** PythonKeys: the (key, record) rows and Row(key) keys PyFlink's key_by made, computed in Java. */
class PythonKeysTest {
    private static final RowTypeInfo WINDOWS = new RowTypeInfo(
            new org.apache.flink.api.common.typeinfo.TypeInformation<?>[] {
                Types.STRING, Types.STRING, Types.STRING, Types.STRING, Types.LONG
            },
            new String[] {"customer_id", "meter_id", "group_key", "window_start", "event_count"});

    private static DataStream<Row> stream(org.apache.flink.api.common.typeinfo.TypeInformation<Row> type, Row... rows) {
        return StreamExecutionEnvironment.getExecutionEnvironment().fromData(type, rows);
    }

    @Test
    void theKeyIsTheFieldsJoinedByUnitSeparatorWithPrefixesAndNullsAsEmpty() {
        Row window = Row.of("c1", "api", "", "2026-10-31 23:00:00.000", 3L);
        // As the Python selector had it: "\x1f".join((customer, meter, group, window_start[:7])).
        assertEquals("c1\u001fapi\u001f\u001f2026-10", PythonKeys.key(window, new int[] {0, 1, 2, 3}, new int[] {-1, -1, -1, 7}));
        assertEquals("", PythonKeys.key(Row.of(null, "x", "", "", 0L), new int[] {0}, new int[] {-1}));
        assertEquals("ab", PythonKeys.key(Row.of("ab", "x", "", "", 0L), new int[] {0}, new int[] {7}));
    }

    @Test
    void recordsCarryTheirKeyAndAreKeyedByRowOfTheKey() throws Exception {
        Row window = Row.of("c1", "api", "eu", "2026-10-05 10:00:00.000", 3L);
        KeyedStream<Row, Row> keyed =
                PythonKeys.keyed(stream(WINDOWS, window), "key-windows", "customer_id", "meter_id", "group_key", "window_start:7");
        assertEquals(Types.ROW(Types.STRING, WINDOWS), keyed.getType());
        assertEquals(Types.ROW(Types.STRING), keyed.getKeyType());
        Row withKey = new PythonKeys.WithKey(new int[] {0, 1, 2, 3}, new int[] {-1, -1, -1, 7}).map(window);
        assertEquals(Row.of("c1\u001fapi\u001feu\u001f2026-10", window), withKey);
        assertEquals(Row.of("c1\u001fapi\u001feu\u001f2026-10"), keyed.getKeySelector().getKey(withKey));
    }

    @Test
    void aTablesRowsKeepTheirDataTypeAfterPyFlinksLegacyRoundTrip() {
        ExternalTypeInfo<Row> table = ExternalTypeInfo.of(DataTypes.ROW(
                DataTypes.FIELD("record", DataTypes.STRING()),
                DataTypes.FIELD("customer_id", DataTypes.STRING()),
                DataTypes.FIELD("source_offset", DataTypes.BIGINT())));
        KeyedStream<Row, Row> keyed = PythonKeys.keyed(stream(table, Row.of("grant", null, 7L)), "key-credits", "customer_id");
        RowTypeInfo type = (RowTypeInfo) keyed.getType();
        assertTrue(type.getTypeAt(1) instanceof ExternalTypeInfo);
        assertEquals(table.getDataType().getLogicalType(), ((ExternalTypeInfo<?>) type.getTypeAt(1)).getDataType().getLogicalType());
    }

    @Test
    void amongKeepsTheRowsWhoseKeyIsAllowed() throws Exception {
        PythonKeys.Among rated = new PythonKeys.Among(new int[] {0, 1}, new int[] {-1, -1},
                new String[] {"c1\u001fapi", "c2\u001ftokens", "c1\u001fapi"});
        assertEquals(2, rated.allowed().size());
        assertTrue(rated.filter(Row.of("c1", "api", "", "2026-10-05 10:00:00.000", 3L)));
        assertTrue(rated.filter(Row.of("c2", "tokens", "{}", "2026-10-05 10:00:00.000", 3L)));
        assertFalse(rated.filter(Row.of("c1", "tokens", "", "2026-10-05 10:00:00.000", 3L)));
        assertFalse(rated.filter(Row.of("c2", "api", "", "2026-10-05 10:00:00.000", 3L)));
        DataStream<Row> kept = PythonKeys.among(stream(WINDOWS, Row.of("c1", "api", "", "w", 1L)), "rated-meters",
                new String[] {"customer_id", "meter_id"}, new String[] {"c1\u001fapi"});
        assertEquals(WINDOWS, kept.getType());
    }

    @Test
    void anUnknownFieldIsRefusedWhenTheGraphIsBuilt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PythonKeys.keyed(stream(WINDOWS, Row.of("c", "m", "g", "w", 1L)), "k", "customer"));
        assertTrue(e.getMessage().contains("no field 'customer'"), e.getMessage());
    }
}
