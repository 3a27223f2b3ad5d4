package org.apache.flink.client.python;

import java.io.DataOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.api.python.shaded.py4j.CallbackClient;
import org.apache.flink.api.python.shaded.py4j.Gateway;
import org.apache.flink.api.python.shaded.py4j.GatewayServer;
import org.apache.flink.util.NetUtils;

/**
 * A PyFlink gateway JVM that outlives its Python client and serves the next one: tallyflow's warm
 * JVM (jobs/tallyflow/stream/warm_gateway.py). PyFlink's own PythonGatewayServer pings the
 * Watchdog of its first client and exits once that client is gone, so every run pays a cold JVM:
 * class loading, the planner's first plan, the JIT, the embedded interpreter's imports.
 *
 * <p>Here each client in turn registers its Watchdog (PyFlink's get_gateway does, after it has
 * pointed the gateway's callbacks at itself) and is pinged while connected. A client that leaves
 * after putting "Released" in the entry point (its job ended) leaves the JVM to the next one; a
 * client that leaves without it (killed, interrupted, failed) may leave a job running, so the JVM
 * exits with it, as PyFlink's does. With no client for the idle time (milliseconds, the first
 * argument), the JVM exits too. One client at a time: the Python side holds a lock while
 * connected.
 *
 * <p>In PyFlink's package because PythonEnvUtils.startGatewayServer, which builds the gateway
 * exactly as PyFlink's server does, is package-private.
 */
public final class WarmGateway {
    private static final long CHECK_MS = 100;
    static final String TOKEN_FILE = "TALLYFLOW_GATEWAY_TOKEN_FILE";

    private WarmGateway() {}

    public static void main(String[] args) throws Exception {
        long idleMs = Long.parseLong(args[0]);
        GatewayServer server = authenticatedServer(Files.readString(Path.of(System.getenv(TOKEN_FILE))).strip());
        PythonEnvUtils.setGatewayServer(server);
        handshake(server.getListeningPort(), server.getCallbackClient().getPort());
        @SuppressWarnings("unchecked")
        Map<String, Object> entryPoint = (Map<String, Object>) server.getGateway().getEntryPoint();
        long idleSince = System.currentTimeMillis();
        int clients = 0;
        log("listening on port " + server.getListeningPort() + ", idle timeout " + idleMs + " ms");
        while (System.currentTimeMillis() - idleSince < idleMs) {
            Object watchdog = entryPoint.remove("Watchdog");
            if (watchdog == null) {
                Thread.sleep(CHECK_MS);
                continue;
            }
            clients++;
            log("client " + clients + " connected");
            String gone;
            while ((gone = gone((PythonGatewayServer.Watchdog) watchdog)) == null) {
                Thread.sleep(CHECK_MS);
            }
            if (entryPoint.remove("Released") == null) {
                log("client " + clients + " left without releasing the JVM (its job may still run; " + gone
                        + "); exiting");
                System.exit(1);
            }
            log("client " + clients + " released the JVM");
            System.gc(); // hand the heap of the ended job back (G1 uncommits after a full collection)
            idleSince = System.currentTimeMillis();
        }
        log("idle for " + idleMs + " ms; exiting");
        server.shutdown();
        System.exit(0);
    }

    /**
     * PythonEnvUtils.startGatewayServer's server, with py4j's auth token. PyFlink's own gateway has
     * none: it lives as long as its one client. This one idles for minutes between clients, and
     * without a token any local process could call into it (arbitrary code as this user). The
     * token comes from a file only this user can read (TOKEN_FILE names it).
     */
    private static GatewayServer authenticatedServer(String token) throws Exception {
        if (token.isEmpty()) {
            throw new IllegalStateException(TOKEN_FILE + " names an empty file");
        }
        try (NetUtils.Port callback = NetUtils.getAvailablePort()) {
            GatewayServer server = new GatewayServer.GatewayServerBuilder()
                    .gateway(new Gateway(new ConcurrentHashMap<String, Object>(), new CallbackClient(callback.getPort())))
                    .javaPort(0)
                    .authToken(token)
                    .build();
            Method reset = PythonEnvUtils.class.getDeclaredMethod("resetCallbackClientExecutorService",
                    GatewayServer.class);
            reset.setAccessible(true);
            reset.invoke(null, server);
            server.start(true);
            return server;
        }
    }

    private static void log(String message) {
        System.out.println(java.time.Instant.now() + " tallyflow warm gateway: " + message);
        System.out.flush();
    }

    /** Null while the client answers, else how it did not. */
    private static String gone(PythonGatewayServer.Watchdog watchdog) {
        try {
            return watchdog.ping() ? null : "its watchdog said so";
        } catch (Exception e) { // the client's callback server is gone
            return e.getMessage();
        }
    }

    /** The port, as PyFlink's server writes it, to the file _PYFLINK_CONN_INFO_PATH names. */
    private static void handshake(int port, int callbackPort) throws Exception {
        File target = new File(System.getenv("_PYFLINK_CONN_INFO_PATH"));
        File tmp = Files.createTempFile(target.getParentFile().toPath(), "connection", ".info").toFile();
        try (DataOutputStream out = new DataOutputStream(new FileOutputStream(tmp))) {
            out.writeInt(port);
            out.writeInt(callbackPort);
        }
        if (!tmp.renameTo(target)) {
            throw new IllegalStateException("cannot write " + target);
        }
    }
}
