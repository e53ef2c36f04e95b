package org.rescoresidecar.bridge.core;

import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;

/**
 * Node-level settings (elasticsearch.yml / opensearch.yml), identical in both engines:
 * <pre>
 * sidecar.url                 http://127.0.0.1:9209   loopback only: the sidecar runs beside the node
 * sidecar.timeout_ms          30      budget when a request gives no timeout_ms
 * sidecar.connect_timeout_ms  50      TCP connect budget (also capped by the request's budget)
 * sidecar.breaker.failures    5       consecutive failures that open the breaker
 * sidecar.breaker.cooldown_ms 5000    how long an open breaker skips calls before one probe
 * </pre>
 */
public final class SidecarSettings {
    public static final String DEFAULT_URL = "http://127.0.0.1:9209";
    public static final int DEFAULT_TIMEOUT_MS = 30;
    public static final int DEFAULT_CONNECT_TIMEOUT_MS = 50;
    public static final int DEFAULT_BREAKER_FAILURES = 5;
    public static final int DEFAULT_BREAKER_COOLDOWN_MS = 5000;

    private final URI rescoreUri;
    private final int defaultTimeoutMs;
    private final int connectTimeoutMs;
    private final int breakerFailures;
    private final int breakerCooldownMs;

    public SidecarSettings(String url, int defaultTimeoutMs, int connectTimeoutMs, int breakerFailures, int breakerCooldownMs) {
        this.rescoreUri = rescoreUri(url);
        if (defaultTimeoutMs < 1 || defaultTimeoutMs > RescoreParams.MAX_TIMEOUT_MS) {
            throw new IllegalArgumentException("sidecar.timeout_ms must be in 1.." + RescoreParams.MAX_TIMEOUT_MS + ", got " + defaultTimeoutMs);
        }
        if (connectTimeoutMs < 1) {
            throw new IllegalArgumentException("sidecar.connect_timeout_ms must be >= 1, got " + connectTimeoutMs);
        }
        if (breakerFailures < 1) {
            throw new IllegalArgumentException("sidecar.breaker.failures must be >= 1, got " + breakerFailures);
        }
        if (breakerCooldownMs < 0) {
            throw new IllegalArgumentException("sidecar.breaker.cooldown_ms must be >= 0, got " + breakerCooldownMs);
        }
        this.defaultTimeoutMs = defaultTimeoutMs;
        this.connectTimeoutMs = connectTimeoutMs;
        this.breakerFailures = breakerFailures;
        this.breakerCooldownMs = breakerCooldownMs;
    }

    public static SidecarSettings defaults() {
        return new SidecarSettings(DEFAULT_URL, DEFAULT_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_BREAKER_FAILURES,
            DEFAULT_BREAKER_COOLDOWN_MS);
    }

    /** {@code http://<loopback host>:<port>} → the {@code /v1/rescore} URI; anything else is refused. */
    static URI rescoreUri(String url) {
        URI base;
        try {
            base = URI.create(url);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("sidecar.url [" + url + "] is not a URL: " + e.getMessage(), e);
        }
        if (!"http".equals(base.getScheme()) || base.getHost() == null || base.getPort() < 1) {
            throw new IllegalArgumentException("sidecar.url [" + url + "] must look like http://127.0.0.1:9209");
        }
        if (base.getPath() != null && !base.getPath().isEmpty() && !"/".equals(base.getPath())) {
            throw new IllegalArgumentException("sidecar.url [" + url + "] must not have a path");
        }
        String host = base.getHost();
        boolean loopback = "localhost".equals(host);
        if (!loopback) {
            try {
                // literal addresses only: no DNS lookup at start-up
                loopback = host.matches("[0-9.]+|\\[[0-9a-fA-F:]+\\]") && InetAddress.getByName(host).isLoopbackAddress();
            } catch (UnknownHostException e) {
                loopback = false;
            }
        }
        if (!loopback) {
            throw new IllegalArgumentException("sidecar.url [" + url + "] must point at the loopback interface "
                + "(the plugin only has permission to connect to localhost)");
        }
        return URI.create("http://" + host + ":" + base.getPort() + "/v1/rescore");
    }

    public URI rescoreUri() { return rescoreUri; }
    public int defaultTimeoutMs() { return defaultTimeoutMs; }
    public int connectTimeoutMs() { return connectTimeoutMs; }
    public int breakerFailures() { return breakerFailures; }
    public int breakerCooldownMs() { return breakerCooldownMs; }
}
