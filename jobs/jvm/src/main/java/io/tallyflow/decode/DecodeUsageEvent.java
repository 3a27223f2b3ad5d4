package io.tallyflow.decode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.net.URLDecoder;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.apache.avro.LogicalTypes;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.GenericMapData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;

/**
 * TF_DECODE(value BYTES, config STRING): decodes and validates one Confluent-framed Avro usage event.
 *
 * <p>Never throws on bad input: a bad record comes back with {@code error} set (the dead-letter
 * reason) and the other fields null, so the job routes it to the dead-letter topic and stays up.
 * Settings come as the second argument (see configure).
 */
public class DecodeUsageEvent extends ScalarFunction {
    public static final String RESULT_TYPE = "ROW<error STRING, schema_id INT, event_id STRING, "
            + "customer_id STRING, event_type STRING, event_time TIMESTAMP_LTZ(3), "
            + "vals MAP<STRING, DECIMAL(38, 12)>, dims MAP<STRING, STRING>>";

    private static final BigInteger MAX_UNSCALED = BigInteger.TEN.pow(38);
    // One home for the limits, shared with the producer's validation: schemas/event_limits.json.
    private static final Map<String, Integer> LIMITS = SchemaCatalog.limits();
    static final int SCALE = LIMITS.get("decimal_scale");
    private static final int MAX_ID_LENGTH = LIMITS.get("max_id_length");
    private static final int MAX_DIMENSIONS = LIMITS.get("max_dimensions");
    private static final int MAX_DIMENSION_LENGTH = LIMITS.get("max_dimension_length");
    private static final int MAX_VALUES = LIMITS.get("max_values");
    private static final int MAX_SOURCE_LENGTH = LIMITS.get("max_source_length");

    private transient String configured;
    private transient SchemaCatalog catalog;
    private transient Map<Integer, Reader> readers;
    private transient BinaryDecoder decoder;
    private transient long maxFutureMs;
    private transient BigDecimal maxQuantity;
    private transient int maxRecordBytes;
    private transient Set<String> knownCustomers;
    private transient Set<String> pseudonymized;
    private transient Mac pseudonyms;
    // The source table calls TF_DECODE twice per record (the row and its rowtime column): the
    // second call returns the first's result. A copy is kept because Flink may reuse buffers.
    private transient byte[] lastInput;
    private transient RowData lastResult;

    /** A resolving reader for one writer schema, or the reason it cannot be resolved. */
    private record Reader(UniqueKeys datumReader, int valueScale, String error, boolean unknown,
            long at) {
        Reader(UniqueKeys datumReader, int valueScale, String error) {
            this(datumReader, valueScale, error, false, System.currentTimeMillis());
        }
    }

    /** How long an unknown schema id is taken as unknown before the registry is asked again. */
    static final long UNKNOWN_ID_RETRY_MS = 5_000;

    /**
     * Settings arrive as the second argument, a literal the job builder renders (job.py):
     * {@code key=value&key=value}, values percent-encoded. A literal rather than job parameters
     * because the watermark generator, which also calls this function, cannot read job parameters.
     */
    private void configure(String config) throws IOException {
        Map<String, String> conf = new HashMap<>();
        for (String pair : config.split("&")) {
            int eq = pair.indexOf('=');
            if (eq > 0) {
                conf.put(pair.substring(0, eq), URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8));
            }
        }
        catalog = new SchemaCatalog("usage-event", conf.getOrDefault("registry", ""),
                conf.getOrDefault("registry_auth_file", ""), conf.getOrDefault("registry_ca", ""));
        readers = new HashMap<>();
        maxFutureMs = Long.parseLong(conf.getOrDefault("max_future_ms", "86400000"));
        maxQuantity = new BigDecimal(conf.getOrDefault("max_quantity", "1000000000000"));
        maxRecordBytes = Integer.parseInt(conf.getOrDefault("max_record_bytes", "65536"));
        // The registry travels inside the literal (one id per line), so a TaskManager on another
        // machine checks against the list the submitting client loaded from the catalog.
        String customers = conf.getOrDefault("customers", "");
        knownCustomers = null;
        if (conf.containsKey("customers")) {
            knownCustomers = new HashSet<>(Arrays.asList(customers.split("\\R")));
            knownCustomers.remove("");
        }
        pseudonymized = new HashSet<>();
        pseudonyms = null;
        String keys = conf.getOrDefault("pseudonymize", "");
        if (!keys.isBlank()) {
            pseudonymized.addAll(Arrays.asList(keys.split(",")));
            // The key comes from a file on the TaskManager (TALLYFLOW_PSEUDONYM_KEY_FILE), never from the plan.
            byte[] key = Files.readString(Path.of(conf.getOrDefault("pseudonym_key_file", ""))).strip()
                    .getBytes(StandardCharsets.UTF_8);
            try {
                pseudonyms = Mac.getInstance("HmacSHA256");
                pseudonyms.init(new SecretKeySpec(key, "HmacSHA256"));
            } catch (GeneralSecurityException e) {
                throw new IOException("cannot set up the pseudonymization key", e);
            }
        }
        configured = config;
    }

    /**
     * A dimension value as stored: listed keys (privacy.pseudonymize) become the first 128 bits of
     * HMAC-SHA256(key, value) in hex, so equal values stay equal (unique counts stay exact) and
     * the raw value is not stored.
     */
    private String stored(String key, String value) {
        if (pseudonyms == null || !pseudonymized.contains(key)) {
            return value;
        }
        byte[] mac = pseudonyms.doFinal(value.getBytes(StandardCharsets.UTF_8));
        return java.util.HexFormat.of().formatHex(mac, 0, 16);
    }

    /** Returns Flink's internal row, so the planner converts nothing (two maps per event). */
    public @DataTypeHint(value = RESULT_TYPE, bridgedTo = RowData.class) RowData eval(byte[] value, String config) {
        if (!config.equals(configured)) {
            try {
                configure(config);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot load the bundled schema catalog", e);
            }
        }
        if (value != null && lastInput != null && Arrays.equals(value, lastInput)) {
            return lastResult;
        }
        RowData result;
        try {
            result = decode(value);
        } catch (IOException e) {
            // Only a schema registry that does not answer gets here: fail, Flink restarts and retries.
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while fetching a schema", e);
        }
        lastInput = value == null ? null : value.clone();
        lastResult = result;
        return result;
    }

    private RowData decode(byte[] value) throws IOException, InterruptedException {
        if (value == null) {
            return reject("empty record (null value)");
        }
        if (value.length > maxRecordBytes) {
            return reject("record of " + value.length + " bytes exceeds the limit of " + maxRecordBytes);
        }
        if (value.length < 5 || value[0] != 0) {
            return reject("not Confluent wire format (magic byte 0 + 4-byte schema id + Avro body)");
        }
        int schemaId = ByteBuffer.wrap(value, 1, 4).getInt();
        Reader reader = readers.get(schemaId);
        // An id the registry did not know is asked again after a while: it may be registered
        // since (a producer that registers, then sends, racing a registry replica).
        if (reader == null || (reader.unknown() && System.currentTimeMillis() - reader.at() > UNKNOWN_ID_RETRY_MS)) {
            reader = resolve(schemaId);
            readers.put(schemaId, reader);
        }
        if (reader.error() != null) {
            return reject(reader.error());
        }
        GenericRecord rec;
        try {
            decoder = DecoderFactory.get().binaryDecoder(value, 5, value.length - 5, decoder);
            rec = reader.datumReader().read(null, decoder);
            if (!decoder.isEnd()) {
                return reject("Avro body has trailing bytes after the record (schema id " + schemaId + ")");
            }
        } catch (DuplicateKey e) {
            return reject(e.getMessage());
        } catch (IOException | RuntimeException e) {
            return reject("undecodable Avro body for schema id " + schemaId + ": " + e);
        }
        return validate(schemaId, rec, reader.valueScale());
    }

    private Reader resolve(int schemaId) throws IOException, InterruptedException {
        Schema writer = catalog.writer(schemaId);
        if (writer == null) {
            return new Reader(null, 0, "unknown schema id " + schemaId, true, System.currentTimeMillis());
        }
        SchemaCompatibility.SchemaPairCompatibility compat =
                SchemaCompatibility.checkReaderWriterCompatibility(catalog.reader(), writer);
        if (compat.getType() != SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE) {
            return new Reader(null, 0, "incompatible writer schema id " + schemaId + ": " + compat.getDescription());
        }
        Schema.Field values = writer.getField("values");
        int scale = SCALE;
        if (values != null && values.schema().getType() == Schema.Type.MAP
                && values.schema().getValueType().getLogicalType() instanceof LogicalTypes.Decimal d) {
            scale = d.getScale();
        } else if (values != null) {
            return new Reader(null, 0, "incompatible writer schema id " + schemaId + ": values are not decimals");
        }
        return new Reader(new UniqueKeys(writer, catalog.reader()), scale, null);
    }

    private RowData validate(int schemaId, GenericRecord rec, int writerScale) {
        String eventId = text(rec.get("event_id"));
        String customer = text(rec.get("customer_id"));
        String eventType = text(rec.get("event_type"));
        for (String[] id : new String[][] {{"event_id", eventId}, {"customer_id", customer}, {"event_type", eventType}}) {
            if (id[1].isEmpty() || length(id[1]) > MAX_ID_LENGTH) {
                return reject(id[0] + " must be a string of 1 to " + MAX_ID_LENGTH + " characters");
            }
            String unseen = unseen(id[0], id[1]);
            if (unseen != null) {
                return reject(unseen);
            }
        }
        if (knownCustomers != null && !knownCustomers.contains(customer)) {
            return reject("unknown customer " + customer);
        }
        long eventTime = (Long) rec.get("event_time");
        if (eventTime < 0) {
            return reject("event_time " + Instant.ofEpochMilli(eventTime) + " is before 1970");
        }
        long limit = System.currentTimeMillis() + maxFutureMs;
        if (eventTime > limit) {
            return reject("event_time " + Instant.ofEpochMilli(eventTime) + " is more than "
                    + maxFutureMs / 1000 + " s in the future");
        }
        Map<?, ?> rawValues = (Map<?, ?>) rec.get("values");
        if (rawValues.size() > MAX_VALUES) {
            return reject("more than " + MAX_VALUES + " values");
        }
        Map<?, ?> rawDims = (Map<?, ?>) rec.get("dimensions");
        if (rawDims.size() > MAX_DIMENSIONS) {
            return reject("more than " + MAX_DIMENSIONS + " dimensions");
        }
        String unseenKey = unseenKey("value key", rawValues);
        unseenKey = unseenKey != null ? unseenKey : unseenKey("dimension key", rawDims);
        if (unseenKey != null) {
            return reject(unseenKey);
        }
        Object source = rec.get("source");
        if (source != null && length(source.toString()) > MAX_SOURCE_LENGTH) {
            return reject("source is longer than " + MAX_SOURCE_LENGTH + " characters");
        }
        Map<StringData, DecimalData> vals = new HashMap<>();
        for (Map.Entry<?, ?> e : rawValues.entrySet()) {
            String key = e.getKey().toString();
            BigDecimal q;
            try {
                ByteBuffer buf = ((ByteBuffer) e.getValue()).duplicate();
                byte[] bytes = new byte[buf.remaining()];
                buf.get(bytes);
                if (bytes.length == 0) {
                    return reject("value " + key + " is an empty decimal");
                }
                q = new BigDecimal(new BigInteger(bytes), writerScale).setScale(SCALE);
            } catch (ArithmeticException ex) {
                return reject("value " + key + " has more than " + SCALE + " decimal places");
            }
            if (q.signum() < 0) {
                return reject("value " + key + " is negative (" + q.stripTrailingZeros().toPlainString() + ")");
            }
            if (q.compareTo(maxQuantity) > 0 || q.unscaledValue().compareTo(MAX_UNSCALED) >= 0) {
                return reject("value " + key + " exceeds the limit of " + maxQuantity.toPlainString());
            }
            vals.put(StringData.fromString(key), DecimalData.fromBigDecimal(q, 38, SCALE));
        }
        Map<StringData, StringData> dims = new HashMap<>();
        for (Map.Entry<?, ?> e : rawDims.entrySet()) {
            String k = e.getKey().toString();
            String v = e.getValue().toString();
            if (length(k) > MAX_DIMENSION_LENGTH || length(v) > MAX_DIMENSION_LENGTH) {
                return reject("dimension " + k + " is longer than " + MAX_DIMENSION_LENGTH + " characters");
            }
            dims.put(StringData.fromString(k), StringData.fromString(stored(k, v)));
        }
        return GenericRowData.of(null, schemaId, StringData.fromString(eventId), StringData.fromString(customer),
                StringData.fromString(eventType), TimestampData.fromEpochMillis(eventTime), new GenericMapData(vals),
                new GenericMapData(dims));
    }

    /**
     * Why an id or key holds a character that would make it print or compare as another (a
     * control, a format character such as a bidi override or a zero-width space, a surrogate, a
     * line separator), or null. The producer's validation refuses the same categories.
     */
    static String unseen(String name, String s) {
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            int type = Character.getType(cp);
            if (type == Character.CONTROL || type == Character.FORMAT || type == Character.SURROGATE
                    || type == Character.LINE_SEPARATOR || type == Character.PARAGRAPH_SEPARATOR) {
                return name + " holds a control or invisible character (U+" + String.format("%04X", cp) + ")";
            }
            i += Character.charCount(cp);
        }
        return null;
    }

    private static String unseenKey(String name, Map<?, ?> map) {
        for (Object k : map.keySet()) {
            String unseen = unseen(name, k.toString());
            if (unseen != null) {
                return unseen;
            }
        }
        return null;
    }

    /**
     * Avro maps may repeat a key, and the last would win ("calls" twice bills the larger): refused.
     * Avro's fast reader fills maps with no hook, so this reader takes the resolving path.
     */
    static final class UniqueKeys extends GenericDatumReader<GenericRecord> {
        UniqueKeys(Schema writer, Schema reader) {
            super(writer, reader, new GenericData().setFastReaderEnabled(false));
        }

        @Override
        @SuppressWarnings("unchecked")
        protected void addToMap(Object map, Object key, Object value) {
            if (((Map<Object, Object>) map).putIfAbsent(key, value) != null) {
                throw new DuplicateKey(key.toString());
            }
        }
    }

    static final class DuplicateKey extends RuntimeException {
        DuplicateKey(String key) {
            super("duplicate key '" + key + "'", null, false, false);
        }
    }

    /** Characters as the limits count them: Unicode code points (an emoji is one, as in Python). */
    private static int length(String s) {
        return s.codePointCount(0, s.length());
    }

    private static String text(Object o) {
        return o == null ? "" : o.toString();
    }

    private static RowData reject(String reason) {
        return GenericRowData.of(StringData.fromString(reason), null, null, null, null, null, null, null);
    }
}
