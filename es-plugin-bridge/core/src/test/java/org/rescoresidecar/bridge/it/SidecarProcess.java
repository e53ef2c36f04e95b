package org.rescoresidecar.bridge.it;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The real rescore-sidecar release binary on a loopback port, like the Rust end-to-end tests start it. */
public final class SidecarProcess implements AutoCloseable {
    private static final Pattern LISTEN = Pattern.compile("listen=([0-9.]+:[0-9]+)");
    private final Process process;
    private final StringBuffer log = new StringBuffer();

    private SidecarProcess(Process process) {
        this.process = process;
    }

    public static Path binary() {
        String prop = System.getProperty("rescore.sidecar.binary");
        if (prop == null) {
            throw new IllegalStateException("system property rescore.sidecar.binary is not set (run through mvn verify)");
        }
        Path bin = Path.of(prop).normalize();
        if (!Files.isExecutable(bin)) {
            throw new IllegalStateException("the rescore-sidecar release binary is missing at " + bin
                + ": build it first with `cargo build --release --bin rescore-sidecar` at the repo root "
                + "(scripts/test-bridge.sh does this)");
        }
        return bin;
    }

    public static Path testModels() {
        return Path.of(System.getProperty("bridge.testdata", "../testdata")).resolve("models").normalize();
    }

    /** Starts the sidecar on {@code 127.0.0.1:port} and waits until it is ready. */
    public static SidecarProcess start(int port) throws IOException, InterruptedException {
        return start(port, null);
    }

    /** As {@link #start(int)}, with a config file ({@code --config}) when {@code config} is not null. */
    public static SidecarProcess start(int port, Path config) throws IOException, InterruptedException {
        java.util.List<String> cmd = new java.util.ArrayList<>(java.util.List.of(binary().toString(), "--listen", "127.0.0.1:" + port,
            "--models", testModels().toString()));
        if (config != null) {
            cmd.add("--config");
            cmd.add(config.toString());
        }
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectErrorStream(true);
        pb.environment().put("RUST_LOG", "info");
        SidecarProcess sidecar = new SidecarProcess(pb.start());
        CompletableFuture<String> listen = new CompletableFuture<>();
        Thread pump = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(sidecar.process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    sidecar.log.append(line).append('\n');
                    Matcher m = LISTEN.matcher(line);
                    if (m.find()) {
                        listen.complete(m.group(1));
                    }
                }
            } catch (IOException ignored) {
                // the process ended
            }
            listen.complete(null);
        }, "sidecar-log");
        pump.setDaemon(true);
        pump.start();
        try {
            String addr = listen.get(30, TimeUnit.SECONDS);
            if (addr == null) {
                throw new IllegalStateException("rescore-sidecar exited before listening:\n" + sidecar.log);
            }
            EngineRest.waitForHttp200("http://127.0.0.1:" + port + "/readyz", 30_000);
        } catch (Exception e) {
            sidecar.close();
            throw new IllegalStateException("rescore-sidecar did not become ready: " + e + "\n" + sidecar.log, e);
        }
        return sidecar;
    }

    public String log() {
        return log.toString();
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }
}
