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
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
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
    private final String authorization;
    private final HttpClient http;

    /**
     * @param authFile a file holding the registry's Authorization header value (Basic or Bearer),
     *     written by the submitting client with mode 0600, so no credential is in the job's plan
     * @param caFile PEM CA certificates the registry's TLS certificate is checked against
     */
    SchemaCatalog(String subject, String registryUrl, String authFile, String caFile) throws IOException {
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
        this.authorization = authFile == null || authFile.isBlank() ? null
                : Files.readString(Path.of(authFile), StandardCharsets.UTF_8).strip();
        HttpClient.Builder builder = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5));
        if (caFile != null && !caFile.isBlank()) {
            builder.sslContext(trusting(Path.of(caFile)));
        }
        this.http = this.registryUrl == null ? null : builder.build();
    }

    private static SSLContext trusting(Path caFile) throws IOException {
        try (InputStream in = Files.newInputStream(caFile)) {
            KeyStore store = KeyStore.getInstance("PKCS12");
            store.load(null, null);
            int n = 0;
            for (Certificate cert : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                store.setCertificateEntry("ca-" + n++, cert);
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(store);
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(null, tmf.getTrustManagers(), null);
            return context;
        } catch (GeneralSecurityException e) {
            throw new IOException("cannot use the registry CA file " + caFile + ": " + e.getMessage(), e);
        }
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
        HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(registryUrl + "/schemas/ids/" + id))
                .timeout(Duration.ofSeconds(10)).GET();
        if (authorization != null) {
            req.header("Authorization", authorization);
        }
        HttpResponse<String> resp = http.send(req.build(), HttpResponse.BodyHandlers.ofString());
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
