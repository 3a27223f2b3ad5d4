package io.tallyflow.decode;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.apache.avro.Schema;

/**
 * Writer schemas by id: from a Confluent-compatible registry when a URL is given, else from the
 * pinned catalog bundled in this jar (schemas/catalog.json). The reader schema is always the
 * newest bundled version of the subject, so old writers are resolved, never assumed equal.
 */
final class SchemaCatalog {
    private static final String ROOT = "tallyflow/schemas/";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Map<Integer, Schema> bundled = new HashMap<>();
    private final Schema reader;
    private final String registryUrl;
    private final HttpClient http;

    SchemaCatalog(String subject, String registryUrl) throws IOException {
        JsonNode versions = readJson(ROOT + "catalog.json").path("subjects").path(subject);
        if (!versions.isArray() || versions.isEmpty()) {
            throw new IOException("schema catalog has no subject " + subject);
        }
        Schema newest = null;
        int newestVersion = Integer.MIN_VALUE;
        for (JsonNode v : versions) {
            Schema s = new Schema.Parser().parse(readText(ROOT + v.path("file").asText()));
            bundled.put(v.path("id").asInt(), s);
            if (v.path("version").asInt() > newestVersion) {
                newestVersion = v.path("version").asInt();
                newest = s;
            }
        }
        this.reader = newest;
        this.registryUrl = registryUrl == null || registryUrl.isBlank() ? null : registryUrl.replaceAll("/+$", "");
        this.http = this.registryUrl == null ? null
                : HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    }

    /** schemas/event_limits.json: the integer limits every event must keep. */
    static Map<String, Integer> limits() {
        try {
            Map<String, Integer> out = new HashMap<>();
            readJson(ROOT + "event_limits.json").fields().forEachRemaining(e -> {
                if (e.getValue().isInt()) {
                    out.put(e.getKey(), e.getValue().asInt());
                }
            });
            return out;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot read the bundled event limits", e);
        }
    }

    Schema reader() {
        return reader;
    }

    /** The writer schema for an id, or null when neither the registry nor the catalog knows it. */
    Schema writer(int id) throws IOException, InterruptedException {
        if (registryUrl == null) {
            return bundled.get(id);
        }
        HttpRequest req = HttpRequest.newBuilder(URI.create(registryUrl + "/schemas/ids/" + id))
                .timeout(Duration.ofSeconds(10)).GET().build();
        HttpResponse<String> resp = http.send(req, HttpResponse.BodyHandlers.ofString());
        if (resp.statusCode() == 404) {
            return null;
        }
        if (resp.statusCode() != 200) {
            // A registry outage must not turn good events into rejects: fail and let Flink retry.
            throw new IOException("schema registry answered " + resp.statusCode() + " for id " + id);
        }
        return new Schema.Parser().parse(JSON.readTree(resp.body()).path("schema").asText());
    }

    private static JsonNode readJson(String resource) throws IOException {
        return JSON.readTree(readText(resource));
    }

    private static String readText(String resource) throws IOException {
        try (InputStream in = SchemaCatalog.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                throw new IOException("missing bundled resource " + resource);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}
