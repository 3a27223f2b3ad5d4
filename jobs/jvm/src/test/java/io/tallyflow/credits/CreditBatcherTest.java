package io.tallyflow.credits;

import static io.tallyflow.TestRows.ms;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.util.List;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.junit.jupiter.api.Test;

/** CreditBatcher in Flink's operator harness: one row per customer and flush, summed per meter
 * and second, flushed on its timer and before every checkpoint barrier, so no checkpoint holds
 * half a batch. */
class CreditBatcherTest {
    private static RowData usage(String customer, String meter, String qty, String time) {
        return GenericRowData.of(StringData.fromString(customer), StringData.fromString(meter),
                DecimalData.fromBigDecimal(new BigDecimal(qty).setScale(12), 38, 12),
                TimestampData.fromEpochMillis(ms(time)));
    }

    private static List<String> rows(OneInputStreamOperatorTestHarness<RowData, RowData> h) {
        return h.extractOutputValues().stream().map(r -> r.getString(0) + " " + r.getString(1) + " "
                + r.getString(2)).toList();
    }

    @Test
    void flushesBeforeEveryCheckpointBarrier() throws Exception {
        try (var h = new OneInputStreamOperatorTestHarness<>(new CreditBatcher(60_000))) {
            h.open();
            h.processElement(usage("c1", "calls", "1", "2026-10-05T10:00:00.100Z"), 0);
            h.processElement(usage("c1", "calls", "2.5", "2026-10-05T10:00:00.900Z"), 0);
            h.processElement(usage("c1", "calls", "1", "2026-10-05T10:00:01.000Z"), 0);  // the next second
            h.processElement(usage("c2", "calls", "0.000000000001", "2026-10-05T10:00:00.500Z"), 0);
            h.processElement(usage("c1", "gb \"eu\"", "4", "2026-10-05T10:00:00.200Z"), 0);
            assertTrue(h.extractOutputValues().isEmpty(), "nothing leaves before the flush interval");
            h.prepareSnapshotPreBarrier(1L);
            long s = ms("2026-10-05T10:00:00Z");
            // One row per customer; its entries in the order they first arrived.
            assertEquals(List.of(
                    "usage c1 [[\"calls\"," + s + ",\"3.500000000000\"," + (s + 100) + "," + (s + 900) + "],"
                            + "[\"calls\"," + (s + 1000) + ",\"1.000000000000\"," + (s + 1000) + "," + (s + 1000) + "],"
                            + "[\"gb \\\"eu\\\"\"," + s + ",\"4.000000000000\"," + (s + 200) + "," + (s + 200) + "]]",
                    "usage c2 [[\"calls\"," + s + ",\"0.000000000001\"," + (s + 500) + "," + (s + 500) + "]]"),
                    rows(h));
            h.snapshot(1L, 0L);
            h.prepareSnapshotPreBarrier(2L);
            assertEquals(2, h.extractOutputValues().size(), "a flushed batch is never emitted twice");
        }
    }

    @Test
    void flushesOnItsTimer() throws Exception {
        try (var h = new OneInputStreamOperatorTestHarness<>(new CreditBatcher(200))) {
            h.open();
            h.setProcessingTime(1_000);
            h.processElement(usage("c1", "gb", "7", "2026-10-05T10:00:00Z"), 0);
            h.setProcessingTime(1_199);
            assertTrue(h.extractOutputValues().isEmpty());
            h.setProcessingTime(1_200);
            assertEquals(1, h.extractOutputValues().size());
        }
    }
}
