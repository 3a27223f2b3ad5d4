package io.tallyflow.decode;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigDecimal;
import java.net.InetSocketAddress;
import java.net.URLEncoder;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.AbstractMap;
import java.util.AbstractSet;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.flink.table.data.RowData;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** TF_DECODE on the shared event vectors, on every reject reason of its own, and on an older
 * writer schema resolved against the newer reader schema. */
class DecodeUsageEventTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String CONF = "max_future_ms=86400000&max_quantity=1000000000000&max_record_bytes=65536";

    static Schema schema(String file) throws IOException {
        try (InputStream in = DecodeUsageEventTest.class.getClassLoader()
                .getResourceAsStream("tallyflow/schemas/" + file)) {
            return new Schema.Parser().parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        }
    }

    static byte[] framed(int schemaId, Schema schema, GenericRecord record) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0);
        out.write(ByteBuffer.allocate(4).putInt(schemaId).array());
        BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
        new GenericDatumWriter<GenericRecord>(schema).write(record, enc);
        enc.flush();
        return out.toByteArray();
    }

    /** A vector's event: its `event`, or its raw `line` (which repeats a key) read field by field. */
    static byte[] encodeCase(JsonNode c) throws IOException {
        if (!c.has("line")) {
            return encode(c.path("event"));
        }
        String line = c.path("line").asText();
        return encode(JSON.readTree(line), pairs(line, "values"), pairs(line, "dimensions"));
    }

    /** The pairs of one object field of a JSON line, in order, repeated keys kept. */
    static List<Map.Entry<String, String>> pairs(String line, String field) throws IOException {
        List<Map.Entry<String, String>> out = new ArrayList<>();
        try (JsonParser p = JSON.getFactory().createParser(line)) {
            p.nextToken();
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                if (p.nextToken() == JsonToken.START_OBJECT && name.equals(field)) {
                    while (p.nextToken() == JsonToken.FIELD_NAME) {
                        String key = p.currentName();
                        p.nextToken();
                        out.add(Map.entry(key, p.getText()));
                    }
                } else {
                    p.skipChildren();
                }
            }
        }
        return out;
    }

    /** A map that writes every pair it holds, a repeated key too (Avro's writer walks entrySet). */
    static <V> Map<String, V> written(List<Map.Entry<String, V>> pairs) {
        return new AbstractMap<>() {
            @Override
            public Set<Map.Entry<String, V>> entrySet() {
                return new AbstractSet<>() {
                    @Override
                    public Iterator<Map.Entry<String, V>> iterator() {
                        return pairs.iterator();
                    }

                    @Override
                    public int size() {
                        return pairs.size();
                    }
                };
            }
        };
    }

    static List<Map.Entry<String, String>> fields(JsonNode obj) {
        List<Map.Entry<String, String>> out = new ArrayList<>();
        obj.fields().forEachRemaining(e -> out.add(Map.entry(e.getKey(), e.getValue().asText())));
        return out;
    }

    /** The JSON form of an event as Avro v2 (id 1002), the way the producer encodes it. */
    static byte[] encode(JsonNode event) throws IOException {
        return encode(event, fields(event.path("values")), fields(event.path("dimensions")));
    }

    static byte[] encode(JsonNode event, List<Map.Entry<String, String>> valuePairs,
            List<Map.Entry<String, String>> dimensionPairs) throws IOException {
        Schema v2 = schema("usage_event.v2.avsc");
        GenericRecord r = new GenericData.Record(v2);
        r.put("event_id", event.path("event_id").asText());
        r.put("customer_id", event.path("customer_id").asText());
        r.put("event_type", event.path("event_type").asText());
        r.put("event_time", Instant.parse(event.path("event_time").asText()).toEpochMilli());
        List<Map.Entry<String, ByteBuffer>> values = new ArrayList<>();
        for (Map.Entry<String, String> e : valuePairs) {
            values.add(Map.entry(e.getKey(),
                    ByteBuffer.wrap(new BigDecimal(e.getValue()).setScale(12).unscaledValue().toByteArray())));
        }
        r.put("values", written(values));
        r.put("dimensions", written(dimensionPairs));
        r.put("source", event.has("source") ? event.path("source").asText() : null);
        return framed(1002, v2, r);
    }

    private static String error(RowData r) {
        return r.isNullAt(0) ? null : r.getString(0).toString();
    }

    @TestFactory
    Stream<DynamicTest> sharedEventVectors() throws IOException {
        JsonNode doc = JSON.readTree(Files.readString(Path.of(System.getProperty("tallyflow.vectors"), "events.json")));
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : doc.path("cases")) {
            if (c.path("only").asText().equals("python")) {
                continue;  // a 13th decimal place cannot be written in the schema's DECIMAL(38, 12)
            }
            tests.add(DynamicTest.dynamicTest(c.path("name").asText(), () -> {
                String err = error(new DecodeUsageEvent().eval(encodeCase(c), CONF));
                if (c.path("accepted").asBoolean()) {
                    assertNull(err);
                } else {
                    assertTrue(err != null && err.contains(c.path("reason").asText()), err);
                }
            }));
        }
        assertTrue(tests.size() >= 20);
        return tests.stream();
    }

    @Test
    void everyRejectReasonOfTheWireFormat() throws IOException {
        DecodeUsageEvent f = new DecodeUsageEvent();
        byte[] good = encode(JSON.readTree(
                "{\"event_id\":\"e\",\"customer_id\":\"c\",\"event_type\":\"t\",\"event_time\":\"2026-10-05T10:00:00Z\"}"));
        assertNull(error(f.eval(good, CONF)));
        assertEquals("empty record (null value)", error(f.eval(null, CONF)));
        assertTrue(error(f.eval(new byte[70_000], CONF)).startsWith("record of 70000 bytes exceeds the limit"));
        assertTrue(error(f.eval(new byte[] {1, 0, 0, 3, (byte) 234, 0}, CONF)).startsWith("not Confluent wire format"));
        assertTrue(error(f.eval(new byte[] {0, 0, 0}, CONF)).startsWith("not Confluent wire format"));
        byte[] unknown = good.clone();
        unknown[4] = 99;
        assertEquals("unknown schema id " + ByteBuffer.wrap(unknown, 1, 4).getInt(), error(f.eval(unknown, CONF)));
        byte[] truncated = java.util.Arrays.copyOf(good, good.length - 3);
        assertTrue(error(f.eval(truncated, CONF)).startsWith("undecodable Avro body for schema id 1002"));
        byte[] trailing = java.util.Arrays.copyOf(good, good.length + 2);
        assertTrue(error(f.eval(trailing, CONF)).startsWith("Avro body has trailing bytes"));
        byte[] emptyDecimal = encodeRaw(Map.of("q", ByteBuffer.allocate(0)));
        assertEquals("value q is an empty decimal", error(f.eval(emptyDecimal, CONF)));
    }

    private static byte[] encodeRaw(Map<String, ByteBuffer> values) throws IOException {
        Schema v2 = schema("usage_event.v2.avsc");
        GenericRecord r = new GenericData.Record(v2);
        r.put("event_id", "e");
        r.put("customer_id", "c");
        r.put("event_type", "t");
        r.put("event_time", 1_000L);
        r.put("values", values);
        r.put("dimensions", Map.of());
        return framed(1002, v2, r);
    }

    @Test
    void unknownCustomersAreRejectedWithARegistry() throws IOException {
        String conf = CONF + "&customers=" + URLEncoder.encode("c\nknown\n", StandardCharsets.UTF_8);
        DecodeUsageEvent f = new DecodeUsageEvent();
        JsonNode event = JSON.readTree(
                "{\"event_id\":\"e\",\"customer_id\":\"stranger\",\"event_type\":\"t\",\"event_time\":\"2026-10-05T10:00:00Z\"}");
        assertEquals("unknown customer stranger", error(f.eval(encode(event), conf)));
        ((com.fasterxml.jackson.databind.node.ObjectNode) event).put("customer_id", "known");
        assertNull(error(f.eval(encode(event), conf)));
    }

    @Test
    void listedDimensionsAreStoredAsAKeyedHmac(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path key = Files.writeString(dir.resolve("pseudonym.key"), "s3cret\n");
        String conf = CONF + "&pseudonymize=user_id&pseudonym_key_file="
                + URLEncoder.encode(key.toString(), StandardCharsets.UTF_8);
        JsonNode event = JSON.readTree("{\"event_id\":\"e\",\"customer_id\":\"c\",\"event_type\":\"t\","
                + "\"event_time\":\"2026-10-05T10:00:00Z\",\"dimensions\":{\"user_id\":\"alice@example.com\",\"model\":\"m\"}}");
        RowData row = new DecodeUsageEvent().eval(encode(event), conf);
        assertNull(error(row));
        Map<String, String> dims = new HashMap<>();
        var map = row.getMap(7);
        for (int i = 0; i < map.size(); i++) {
            dims.put(map.keyArray().getString(i).toString(), map.valueArray().getString(i).toString());
        }
        javax.crypto.Mac mac = javax.crypto.Mac.getInstance("HmacSHA256");
        mac.init(new javax.crypto.spec.SecretKeySpec("s3cret".getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        String expected = java.util.HexFormat.of().formatHex(
                mac.doFinal("alice@example.com".getBytes(StandardCharsets.UTF_8)), 0, 16);
        assertEquals(Map.of("user_id", expected, "model", "m"), dims);  // an unlisted key stays as sent
        // The same value under the same key gives the same pseudonym: unique counts stay exact.
        RowData again = new DecodeUsageEvent().eval(encode(event), conf);
        assertEquals(expected, again.getMap(7).valueArray().getString(indexOf(again, "user_id")).toString());
    }

    private static int indexOf(RowData row, String key) {
        var map = row.getMap(7);
        for (int i = 0; i < map.size(); i++) {
            if (map.keyArray().getString(i).toString().equals(key)) {
                return i;
            }
        }
        return -1;
    }

    @Test
    void anOlderWriterSchemaIsResolvedAgainstTheNewerReader() throws IOException {
        Schema v1 = schema("usage_event.v1.avsc");
        GenericRecord r = new GenericData.Record(v1);
        r.put("event_id", "old");
        r.put("customer_id", "c");
        r.put("event_type", "api_call");
        r.put("event_time", Instant.parse("2026-10-05T10:00:00Z").toEpochMilli());
        r.put("values", Map.of("q", ByteBuffer.wrap(new BigDecimal("2.5").setScale(12).unscaledValue().toByteArray())));
        r.put("dimensions", Map.of("model", "m"));
        RowData row = new DecodeUsageEvent().eval(framed(1001, v1, r), CONF);
        assertNull(error(row));
        assertEquals(1001, row.getInt(1));
        assertEquals("old", row.getString(2).toString());
        assertEquals(new BigDecimal("2.500000000000"),
                row.getMap(6).valueArray().getDecimal(0, 38, 12).toBigDecimal());
    }

    @Test
    void anIncompatibleWriterSchemaFromTheRegistryIsRejected() throws IOException {
        // A registry (the Confluent REST API's GET /schemas/ids/{id}) that holds a schema whose
        // event_time is a string: it cannot be read as the reader's timestamp-millis long.
        String incompatible = "{\"type\":\"record\",\"name\":\"UsageEvent\",\"namespace\":\"io.tallyflow.events\","
                + "\"fields\":[{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"customer_id\",\"type\":\"string\"},"
                + "{\"name\":\"event_type\",\"type\":\"string\"},{\"name\":\"event_time\",\"type\":\"string\"}]}";
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/schemas/ids/", exchange -> {
            boolean known = exchange.getRequestURI().getPath().endsWith("/7");
            byte[] body = known ? JSON.writeValueAsBytes(Map.of("schema", incompatible)) : "{}".getBytes();
            exchange.sendResponseHeaders(known ? 200 : 404, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        server.start();
        try {
            String conf = CONF + "&registry=" + URLEncoder.encode(
                    "http://127.0.0.1:" + server.getAddress().getPort(), StandardCharsets.UTF_8);
            Schema writer = new Schema.Parser().parse(incompatible);
            GenericRecord r = new GenericData.Record(writer);
            r.put("event_id", "e");
            r.put("customer_id", "c");
            r.put("event_type", "t");
            r.put("event_time", "yesterday");
            String err = error(new DecodeUsageEvent().eval(framed(7, writer, r), conf));
            assertTrue(err.startsWith("incompatible writer schema id 7"), err);
            assertEquals("unknown schema id 8", error(new DecodeUsageEvent().eval(framed(8, writer, r), conf)));
        } finally {
            server.stop(0);
        }
    }
}
