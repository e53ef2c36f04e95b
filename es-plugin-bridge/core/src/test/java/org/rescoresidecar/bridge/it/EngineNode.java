package org.rescoresidecar.bridge.it;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real single-node Elasticsearch or OpenSearch server process from the published distribution
 * (the integ-test-zip artifact on Maven Central, unpacked by the build), with the plugin installed by
 * the engine's own plugin installer.
 */
public final class EngineNode implements AutoCloseable {
    /** What differs between the engines' distributions. */
    public static final class Flavor {
        final String launcher;
        final String pluginCli;
        final String javaHomeEnv;
        final String javaOptsEnv;
        /** Node settings the engine's test distribution needs. */
        final Map<String, String> nodeSettings;

        public Flavor(String launcher, String pluginCli, String javaHomeEnv, String javaOptsEnv, Map<String, String> nodeSettings) {
            this.launcher = launcher;
            this.pluginCli = pluginCli;
            this.javaHomeEnv = javaHomeEnv;
            this.javaOptsEnv = javaOptsEnv;
            this.nodeSettings = nodeSettings;
        }

        /** The distribution carries x-pack security; the test node speaks plain HTTP on loopback. */
        public static final Flavor ELASTICSEARCH = new Flavor("elasticsearch", "elasticsearch-plugin", "ES_JAVA_HOME", "ES_JAVA_OPTS",
            Map.of("xpack.security.enabled", "false"));
        public static final Flavor OPENSEARCH = new Flavor("opensearch", "opensearch-plugin", "OPENSEARCH_JAVA_HOME",
            "OPENSEARCH_JAVA_OPTS", Map.of());
    }

    private final Process process;
    private final Path home;
    private final Path logFile;
    private final int httpPort;

    private EngineNode(Process process, Path home, Path logFile, int httpPort) {
        this.process = process;
        this.home = home;
        this.logFile = logFile;
        this.httpPort = httpPort;
    }

    public static Path requiredPath(String property) {
        String v = System.getProperty(property);
        if (v == null) {
            throw new IllegalStateException("system property " + property + " is not set (run through mvn verify)");
        }
        Path p = Path.of(v);
        if (!Files.exists(p)) {
            throw new IllegalStateException(property + " points at a missing path: " + p);
        }
        return p;
    }

    /** A pristine copy of the unpacked distribution (a node writes into its config directory). */
    public static Path freshCopy(Path distribution, Path target) throws IOException, InterruptedException {
        deleteRecursively(target);
        Files.createDirectories(target.getParent());
        exec(List.of("cp", "-a", distribution.toString(), target.toString()));
        return target;
    }

    /** Runs the engine's plugin installer on the zip; returns its output. Fails the test on a non-zero exit. */
    public static String installPlugin(Flavor flavor, Path home, Path javaHome, Path pluginZip, String pluginName)
        throws IOException, InterruptedException {
        if (Files.isDirectory(home.resolve("plugins").resolve(pluginName))) {
            run(flavor, home, javaHome, List.of(home.resolve("bin").resolve(flavor.pluginCli).toString(), "remove", pluginName));
        }
        return run(flavor, home, javaHome, List.of(home.resolve("bin").resolve(flavor.pluginCli).toString(),
            "install", "--batch", pluginZip.toUri().toString()));
    }

    private static String run(Flavor flavor, Path home, Path javaHome, List<String> cmd) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(home.toFile()).redirectErrorStream(true);
        pb.environment().put(flavor.javaHomeEnv, javaHome.toString());
        pb.environment().remove("JAVA_HOME");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new AssertionError(String.join(" ", cmd) + " failed:\n" + out);
        }
        return out;
    }

    /** Starts the node with a fresh data directory and waits for a yellow cluster. */
    public static EngineNode start(Flavor flavor, Path home, Path javaHome, Path work, Map<String, String> settings)
        throws IOException, InterruptedException {
        deleteRecursively(work);
        Files.createDirectories(work);
        int httpPort = EngineRest.freePort();
        int transportPort = EngineRest.freePort();
        List<String> cmd = new ArrayList<>();
        cmd.add(home.resolve("bin").resolve(flavor.launcher).toString());
        List<String> all = new ArrayList<>(List.of(
            "cluster.name=bridge-it", "node.name=bridge-it-node", "discovery.type=single-node",
            "network.host=127.0.0.1", "http.port=" + httpPort, "transport.port=" + transportPort,
            "path.data=" + work.resolve("data"), "path.logs=" + work.resolve("logs"),
            "cluster.routing.allocation.disk.threshold_enabled=false"));
        settings.forEach((k, v) -> all.add(k + "=" + v));
        for (String s : all) {
            cmd.add("-E" + s);
        }
        Path logFile = work.resolve("stdout.log");
        if (isRoot()) {
            // both engines refuse to run as root: run the node as an unprivileged user that owns the
            // node's writable paths (data, logs, config for the keystore)
            String user = nodeUser();
            exec(List.of("chown", "-R", user + ":" + user, work.toString(), home.toString()));
            List<String> wrapped = new ArrayList<>(List.of("setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--"));
            wrapped.addAll(cmd);
            cmd = wrapped;
        }
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(home.toFile()).redirectErrorStream(true)
            .redirectOutput(logFile.toFile());
        pb.environment().put(flavor.javaHomeEnv, javaHome.toString());
        pb.environment().put(flavor.javaOptsEnv, "-Xms512m -Xmx512m");
        pb.environment().remove("JAVA_HOME");
        EngineNode node = new EngineNode(pb.start(), home, logFile, httpPort);
        try {
            long deadline = System.currentTimeMillis() + 180_000;
            while (true) {
                if (!node.process.isAlive()) {
                    throw new IllegalStateException(flavor.launcher + " exited with " + node.process.exitValue());
                }
                try {
                    EngineRest.Response r = node.rest().call("GET", "/_cluster/health?wait_for_status=yellow&timeout=1s", null);
                    if (r.status == 200) {
                        break;
                    }
                } catch (IOException notYet) {
                    // not listening yet
                }
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException(flavor.launcher + " did not start within 180 s");
                }
                Thread.sleep(500);
            }
        } catch (RuntimeException | InterruptedException e) {
            String tail = node.logTail();
            node.close();
            throw new IllegalStateException(e.getMessage() + "\n--- node output ---\n" + tail, e);
        }
        return node;
    }

    public EngineRest rest() {
        return new EngineRest("http://127.0.0.1:" + httpPort);
    }

    public Path home() {
        return home;
    }

    public String logTail() {
        try {
            List<String> lines = Files.readAllLines(logFile, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 80), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        }
    }

    static boolean isRoot() {
        return "root".equals(System.getProperty("user.name"));
    }

    /** The unprivileged account the node runs as when the build runs as root; created if missing. */
    static String nodeUser() throws IOException, InterruptedException {
        String user = System.getProperty("bridge.node.user", "rescore-it");
        if (new ProcessBuilder("id", "-u", user).start().waitFor() != 0) {
            exec(List.of("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user));
        }
        return user;
    }

    static void exec(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " failed: " + out);
        }
    }

    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) paths.sorted(Comparator.reverseOrder())::iterator) {
                Files.delete(p);
            }
        }
    }
}
