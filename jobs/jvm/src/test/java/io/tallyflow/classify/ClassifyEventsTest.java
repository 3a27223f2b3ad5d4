package io.tallyflow.classify;

import static io.tallyflow.TestRows.event;
import static io.tallyflow.TestRows.kind;
import static io.tallyflow.TestRows.ms;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.tallyflow.TestRows;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.table.data.RowData;
import org.junit.jupiter.api.Test;

/** ClassifyEvents in Flink's keyed operator harness: dedup, lateness, and state across a restore. */
class ClassifyEventsTest {
    private static final long HOUR = 3_600_000L;
    private static final ClassifyEvents.Fields FIELDS = new ClassifyEvents.Fields(TestRows.DECODED);

    private static KeyedOneInputStreamOperatorTestHarness<String, RowData, RowData> harness() throws Exception {
        // Dedup horizon 40 days, allowed lateness 1 h, windows of 1 h (the defaults).
        KeyedProcessOperator<String, RowData, RowData> op =
                new ClassifyEvents.Operator(new ClassifyEvents(40 * 24 * HOUR, HOUR, HOUR, FIELDS));
        return new KeyedOneInputStreamOperatorTestHarness<>(op, FIELDS::key, Types.STRING);
    }

    private static void send(KeyedOneInputStreamOperatorTestHarness<String, RowData, RowData> h, RowData row,
                             String time) throws Exception {
        h.processElement(row, ms(time));
    }

    /** One event of customer c at its own time (no values or dimensions). */
    private static void at(KeyedOneInputStreamOperatorTestHarness<String, RowData, RowData> h, String id,
                           String time, long offset) throws Exception {
        send(h, event("c", id, "api", time, Map.of(), Map.of(), offset), time);
    }

    private interface Run {
        void on(KeyedOneInputStreamOperatorTestHarness<String, RowData, RowData> h) throws Exception;
    }

    /** A second run (opened, its own watermark starting over) restored from the snapshot the first took. */
    private static KeyedOneInputStreamOperatorTestHarness<String, RowData, RowData> restoredAfter(Run first)
            throws Exception {
        OperatorSubtaskState snapshot;
        try (var h = harness()) {
            h.open();
            first.on(h);
            snapshot = h.snapshot(1L, 1L);
        }
        var h = harness();
        h.initializeState(snapshot);
        h.open();
        return h;
    }

    private static List<String> kinds(KeyedOneInputStreamOperatorTestHarness<String, RowData, RowData> h) {
        return h.extractOutputValues().stream().map(TestRows::kind).toList();
    }

    @Test
    void duplicatesAndConflictsAreTold() throws Exception {
        try (var h = harness()) {
            h.open();
            String t = "2026-10-05T10:00:00Z";
            send(h, event("c1", "e1", "api", t, Map.of("q", "1.5"), Map.of("m", "a"), 0), t);
            // The same payload again (values written with another scale are the same amount).
            send(h, event("c1", "e1", "api", t, Map.of("q", "1.50"), Map.of("m", "a"), 1), t);
            send(h, event("c1", "e1", "api", t, Map.of("q", "2"), Map.of("m", "a"), 2), t);  // another payload
            send(h, event("c2", "e1", "api", t, Map.of("q", "1.5"), Map.of("m", "a"), 3), t);  // another customer
            send(h, TestRows.reject("not Confluent wire format", 4), t);
            assertEquals(List.of("on_time", "duplicate", "conflict", "on_time", "reject"), kinds(h));
        }
    }

    @Test
    void threeLatenessClassesAgainstTheWatermark() throws Exception {
        try (var h = harness()) {
            h.open();
            h.processWatermark(ms("2026-10-05T12:55:00Z"));
            send(h, event("c", "a", "api", "2026-10-05T13:00:00Z", Map.of(), Map.of(), 0), "2026-10-05T13:00:00Z");
            // Behind the watermark; its window [12:00, 13:00) closed less than the lateness ago.
            send(h, event("c", "b", "api", "2026-10-05T12:10:00Z", Map.of(), Map.of(), 1), "2026-10-05T12:10:00Z");
            // Window [10:00, 11:00) plus an hour of lateness ended before 12:55.
            send(h, event("c", "c", "api", "2026-10-05T10:20:00Z", Map.of(), Map.of(), 2), "2026-10-05T10:20:00Z");
            assertEquals(List.of("on_time", "adjust", "too_late"), kinds(h));
            RowData adjusted = h.extractOutputValues().get(1);
            assertEquals(ms("2026-10-05T12:00:00Z"),
                    adjusted.getTimestamp(TestRows.CLASSIFIED.indexOf("window_start"), 3).getMillisecond());
        }
    }

    @Test
    void aRestoredRunKeepsItsDedupStateAndWatermarkFloor() throws Exception {
        try (var h = restoredAfter(first -> {
            at(first, "seen", "2026-10-05T12:50:00Z", 0);
            first.processWatermark(ms("2026-10-05T12:55:00Z"));
            at(first, "after", "2026-10-05T12:58:00Z", 1);
        })) {
            at(h, "seen", "2026-10-05T12:50:00Z", 9);
            at(h, "old", "2026-10-05T10:20:00Z", 10);
            at(h, "late", "2026-10-05T12:10:00Z", 11);
            at(h, "new", "2026-10-05T13:10:00Z", 12);
            // The resend is a duplicate (the dedup state came back); lateness is judged against the
            // watermark the first run reached (12:55), not against one that starts over.
            assertEquals(List.of("duplicate", "too_late", "adjust", "on_time"), kinds(h));
        }
    }

    @Test
    void theFloorIsTheWatermarkAtTheBarrierEvenWithNoEventAfterIt() throws Exception {
        // The windows downstream restore the watermark they held at the barrier (13:05) and drop
        // what is behind it. An event of the closed window [12:00, 13:00) replayed after the restore
        // must be an adjustment, not on time against the last watermark an event was judged by.
        try (var h = restoredAfter(first -> {
            first.processWatermark(ms("2026-10-05T11:00:00Z"));
            at(first, "a", "2026-10-05T12:40:00Z", 0);
            first.processWatermark(ms("2026-10-05T13:05:00Z"));
        })) {
            at(h, "b", "2026-10-05T12:30:00Z", 1);
            at(h, "c", "2026-10-05T13:10:00Z", 2);
            assertEquals(List.of("adjust", "on_time"), kinds(h));
        }
    }

    @Test
    void theEndOfInputWatermarkIsNoFloor() throws Exception {
        try (var h = restoredAfter(first -> {
            first.processWatermark(ms("2026-10-05T12:55:00Z"));
            first.processWatermark(Long.MAX_VALUE);  // a draining stop
        })) {
            at(h, "a", "2026-10-05T12:10:00Z", 0);
            at(h, "b", "2026-10-05T13:10:00Z", 1);
            assertEquals(List.of("adjust", "on_time"), kinds(h));
        }
    }

    @Test
    void theEndOfTheInputEndsEventTimeEvenWhenTheInputWasIdle() throws Exception {
        // Flink drops watermarks while an output is idle, the end-of-input one of a draining stop
        // too: the operator announces itself active and ends event time on its own.
        try (var h = harness()) {
            h.open();
            h.processWatermark(ms("2026-10-05T12:55:00Z"));
            h.processWatermarkStatus(WatermarkStatus.IDLE);
            h.getOutput().clear();
            h.endInput();
            assertEquals(List.of(WatermarkStatus.ACTIVE, Watermark.MAX_WATERMARK), List.copyOf(h.getOutput()));
        }
        try (var h = harness()) {  // the end-of-input watermark came through: nothing more
            h.open();
            h.processWatermark(Long.MAX_VALUE);
            h.getOutput().clear();
            h.endInput();
            assertEquals(List.of(), List.copyOf(h.getOutput()));
        }
    }
}
