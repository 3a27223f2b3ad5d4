package io.tallyflow.route;

import static io.tallyflow.TestRows.event;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tallyflow.TestRows;
import io.tallyflow.json.JsonBytes;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.operators.ProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.data.utils.JoinedRowData;
import org.apache.flink.util.OutputTag;
import org.junit.jupiter.api.Test;

/** RouteEvents and JsonBytes: every document it writes parses with Jackson back to the row's text,
 * however awkward the text, and each meter gets the row its per-event rule says. */
class RouteEventsTest {
    // Numbers as BigDecimal: the documents carry exact decimals (a double would round them).
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(com.fasterxml.jackson.databind.DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);
    /** Quotes, backslashes, every control character, a line separator, non-ASCII and an emoji. */
    static final String AWKWARD;

    static {
        StringBuilder sb = new StringBuilder("q\"uote\\back/slash ");
        for (char c = 0; c < 0x20; c++) {
            sb.append(c);
        }
        AWKWARD = sb.append("\u007f \u2028 é ü 日本 \uD83D\uDE80").toString();
    }

    private static final OutputTag<RowData> METERED =
            new OutputTag<>("metered", TypeInformation.of(RowData.class));
    private static final String SPEC = String.join("\n",
            "calls\tapi\tone\t\t",
            "gb\tapi\tvalue\tgb\tregion",
            "users\tapi\tone_if_dimension\tuser\t");

    private static RowData classified(RowData decoded, String kind) {
        return new JoinedRowData(decoded, GenericRowData.of(StringData.fromString(kind),
                TimestampData.fromEpochMillis(TestRows.ms("2026-10-05T10:00:00Z")), 42L));
    }

    private static OneInputStreamOperatorTestHarness<RowData, RowData> harness() throws Exception {
        return new OneInputStreamOperatorTestHarness<>(new RouteEvents.Operator(
                new RouteEvents(METERED, new RouteEvents.In(TestRows.CLASSIFIED), SPEC)));
    }

    @Test
    void documentsRoundTripThroughJackson() throws Exception {
        try (var h = harness()) {
            h.open();
            RowData e = event(AWKWARD, "id-" + AWKWARD, "api", "2026-10-05T10:00:00.123Z",
                    Map.of("gb", "1.500000000000", AWKWARD, "0.000000000001"), Map.of("region", AWKWARD), 7);
            h.processElement(classified(e, "too_late"), 0);
            h.processElement(classified(e, "conflict"), 0);
            h.prepareSnapshotPreBarrier(1L);  // the accepted block leaves before the barrier
            List<RowData> out = h.extractOutputValues();
            assertEquals(List.of("late", "duplicates", "accepted"),
                    out.stream().map(r -> r.getString(0).toString()).toList());
            assertEquals(JSON.readTree(out.get(0).getBinary(2)), JSON.readTree(out.get(2).getBinary(2)));
            out = List.of(out.get(2), out.get(0), out.get(1));
            JsonNode doc = JSON.readTree(out.get(0).getBinary(2));
            assertEquals(AWKWARD, doc.get("customer_id").asText());
            assertEquals("id-" + AWKWARD, doc.get("event_id").asText());
            assertEquals("2026-10-05T10:00:00.123Z", doc.get("event_time").asText());
            assertEquals("1.5", doc.get("values").get("gb").decimalValue().toPlainString());
            assertEquals("0.000000000001", doc.get("values").get(AWKWARD).decimalValue().toPlainString());
            assertEquals(AWKWARD, doc.get("dimensions").get("region").asText());
            assertEquals("too_late", doc.get("lateness").asText());
            assertEquals(false, doc.get("on_time").asBoolean());
            assertEquals(7, doc.get("source_offset").asLong());
            JsonNode dup = JSON.readTree(out.get(2).getBinary(2));
            assertEquals(true, dup.get("conflict").asBoolean());
            assertEquals(42L, dup.get("payload_hash").asLong());
        }
    }

    @Test
    void meterRowsFollowEachMetersPerEventRule() throws Exception {
        try (var h = harness()) {
            h.open();
            h.processElement(classified(event("c", "1", "api", "2026-10-05T10:00:00Z", Map.of("gb", "2"),
                    Map.of("region", AWKWARD, "user", "u1"), 0), "on_time"), 0);
            h.processElement(classified(event("c", "2", "api", "2026-10-05T10:00:00Z", Map.of(), Map.of(), 1),
                    "adjust"), 0);
            List<String> rows = new ArrayList<>();
            ConcurrentLinkedQueue<StreamRecord<RowData>> side = h.getSideOutput(METERED);
            for (StreamRecord<RowData> r : side) {
                RowData m = r.getValue();
                rows.add(m.getString(1) + " " + m.getString(2) + " "
                        + m.getDecimal(3, 38, 12).toBigDecimal().stripTrailingZeros().toPlainString() + " "
                        + m.getString(4));
            }
            String group = "{\"region\":" + JSON.writeValueAsString(AWKWARD) + "}";
            // Event 2 has no gb value and no user dimension: only the count meter counts it.
            assertEquals(List.of("calls {} 1 on_time", "gb " + group + " 2 on_time", "users {} 1 on_time",
                    "calls {} 1 adjust"), rows);
            assertEquals(AWKWARD, JSON.readTree(group).get("region").asText());
        }
    }

    /** tests/vectors/aggregations.json: each meter's rows, by the per-event rule the registry gives it. */
    @Test
    void sharedAggregationVectors() throws Exception {
        JsonNode doc = JSON.readTree(java.nio.file.Files.readString(
                java.nio.file.Path.of(System.getProperty("tallyflow.vectors"), "aggregations.json")));
        StringBuilder spec = new StringBuilder();
        for (JsonNode m : doc.path("meters")) {
            spec.append(m.path("id").asText()).append('\t').append(m.path("event_type").asText()).append('\t')
                    .append(m.path("per_event").asText()).append('\t').append(m.path("value").asText("")).append("\t\n");
        }
        try (var h = new OneInputStreamOperatorTestHarness<RowData, RowData>(new ProcessOperator<>(
                new RouteEvents(METERED, new RouteEvents.In(TestRows.CLASSIFIED), spec.toString())))) {
            h.open();
            int offset = 0;
            for (JsonNode e : doc.path("events")) {
                Map<String, String> values = new java.util.HashMap<>();
                e.path("values").fields().forEachRemaining(v -> values.put(v.getKey(), v.getValue().asText()));
                Map<String, String> dims = new java.util.HashMap<>();
                e.path("dimensions").fields().forEachRemaining(v -> dims.put(v.getKey(), v.getValue().asText()));
                h.processElement(classified(event(doc.path("customer").asText(), e.path("event_id").asText(),
                        e.path("event_type").asText(), e.path("event_time").asText(), values, dims, offset++),
                        "on_time"), 0);
            }
            Map<String, List<String>> got = new java.util.HashMap<>();
            Map<String, Integer> seen = new java.util.HashMap<>();
            for (StreamRecord<RowData> r : h.getSideOutput(METERED)) {
                RowData m = r.getValue();
                got.computeIfAbsent(m.getString(1).toString(), k -> new ArrayList<>()).add(
                        m.getString(6) + "=" + m.getDecimal(3, 38, 12).toBigDecimal().stripTrailingZeros().toPlainString());
            }
            for (JsonNode m : doc.path("meters")) {
                List<String> want = new ArrayList<>();
                int i = 0;
                for (JsonNode e : doc.path("events")) {
                    if (!e.path("event_type").asText().equals(m.path("event_type").asText())) {
                        continue;
                    }
                    JsonNode row = m.path("rows").get(i++);
                    if (!row.isNull()) {
                        want.add(e.path("event_id").asText() + "="
                                + new java.math.BigDecimal(row.asText()).stripTrailingZeros().toPlainString());
                    }
                }
                seen.put(m.path("id").asText(), want.size());
                assertEquals(want, got.getOrDefault(m.path("id").asText(), List.of()), m.path("id").asText());
            }
            assertEquals(doc.path("meters").size(), seen.size());  // every meter of the vectors checked
        }
    }

    /** Accepted documents leave in blocks: newline-separated, never over BLOCK_BYTES unless one
     * document is, emitted when full, before every checkpoint barrier and at the end of input. */
    @Test
    void acceptedDocumentsLeaveInBlocks() throws Exception {
        try (var h = harness()) {
            h.open();
            String big = "x".repeat(1000);
            int n = 0;
            for (; n < 1200; n++) {  // about 1.3 MB of documents
                h.processElement(classified(event("c", "e" + n, "api", "2026-10-05T10:00:00Z", Map.of(),
                        Map.of("pad", big), n), "on_time"), 0);
            }
            List<byte[]> full = blocks(h);
            assertEquals(2, full.size(), "two full blocks before any barrier");
            for (byte[] b : full) {
                assertTrue(b.length <= RouteEvents.BLOCK_BYTES && b.length > RouteEvents.BLOCK_BYTES - 1200);
            }
            h.prepareSnapshotPreBarrier(1L);
            h.processElement(classified(event("c", "last", "api", "2026-10-05T10:00:00Z", Map.of(), Map.of(), n),
                    "adjust"), 0);
            h.endInput();
            h.getOneInputOperator().finish();
            List<byte[]> all = blocks(h);
            assertEquals(4, all.size(), "the rest before the barrier, the last document at the end");
            List<String> ids = new ArrayList<>();
            for (byte[] b : all) {
                assertTrue(b[b.length - 1] == '}', "no trailing separator");
                for (String line : new String(b, StandardCharsets.UTF_8).split("\n", -1)) {
                    ids.add(JSON.readTree(line).get("event_id").asText());
                }
            }
            assertEquals(n + 1, ids.size());
            assertEquals("e0", ids.get(0));
            assertEquals("last", ids.get(n));
            assertEquals(n + 1, new java.util.HashSet<>(ids).size());
        }
    }

    private static List<byte[]> blocks(OneInputStreamOperatorTestHarness<RowData, RowData> h) {
        return h.extractOutputValues().stream().filter(r -> r.getString(0).toString().equals("accepted"))
                .map(r -> r.getBinary(2)).toList();
    }

    @Test
    void jsonBytesEscapesAsJacksonReadsIt() throws Exception {
        JsonBytes json = new JsonBytes();
        byte[] doc = json.reset().ch('[').string(AWKWARD).ch(',').string(StringData.fromString(AWKWARD)).ch(']')
                .toBytes();
        JsonNode parsed = JSON.readTree(doc);
        assertEquals(AWKWARD, parsed.get(0).asText());
        assertEquals(AWKWARD, parsed.get(1).asText());
        assertEquals(new String(doc, StandardCharsets.UTF_8), json.toString());
    }
}
