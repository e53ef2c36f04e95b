package org.rescoresidecar.bridge.core;

import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;

/**
 * Node-level settings (elasticsearch.yml / opensearch.yml), identical in both engines:
 * <pre>
 * sidecar.url                      http://127.0.0.1:9209  loopback only: the sidecar runs beside the node
 * sidecar.timeout_ms               30     budget when a request gives no timeout_ms
 * sidecar.connect_timeout_ms       50     TCP connect budget (also capped by the request's budget)
 * sidecar.breaker.window_ms        10000  sliding window of call outcomes
 * sidecar.breaker.min_calls        10     counted calls in the window before the breaker may open
 * sidecar.breaker.failure_rate     0.5    share of failures in the window that opens it
 * sidecar.breaker.cooldown_ms      5000   how long an open breaker skips calls before probing
 * sidecar.breaker.probes           3      successful probes in a row that start the ramp-up
 * sidecar.breaker.ramp_ms          5000   ramp-up from 10% to 100% of calls
 * sidecar.breaker.consecutive_failures 20 failures in a row that open it at once (0: only the rate)
 * sidecar.fallback_scores          rank_mapped | below_rescored  (how a fallen-back shard's hits are scored)
 * </pre>
 */
public record SidecarSettings(URI rescoreUri, int defaultTimeoutMs, int connectTimeoutMs, int breakerWindowMs,
                              int breakerMinCalls, double breakerFailureRate, int breakerCooldownMs, int breakerProbes,
                              int breakerRampMs, int breakerConsecutiveFailures, ShardRescore.FallbackMode fallbackMode) {
    public static final String DEFAULT_URL = "http://127.0.0.1:9209";
    public static final int DEFAULT_TIMEOUT_MS = 30;
    public static final int DEFAULT_CONNECT_TIMEOUT_MS = 50;
    public static final int DEFAULT_BREAKER_WINDOW_MS = 10_000;
    public static final int DEFAULT_BREAKER_MIN_CALLS = 10;
    public static final double DEFAULT_BREAKER_FAILURE_RATE = 0.5;
    public static final int DEFAULT_BREAKER_COOLDOWN_MS = 5000;
    public static final int DEFAULT_BREAKER_PROBES = 3;
    public static final int DEFAULT_BREAKER_RAMP_MS = 5000;
    /** About 0.2-0.3 s of a node's calls when its sidecar stops answering (fault matrix); a hiccup shorter than that does not open it. */
    public static final int DEFAULT_BREAKER_CONSECUTIVE_FAILURES = 20;
    public static final String DEFAULT_FALLBACK_SCORES = "rank_mapped";

    public SidecarSettings {
        if (defaultTimeoutMs < 1 || defaultTimeoutMs > RescoreParams.MAX_TIMEOUT_MS) {
            throw new IllegalArgumentException("sidecar.timeout_ms must be in 1.." + RescoreParams.MAX_TIMEOUT_MS + ", got " + defaultTimeoutMs);
        }
        if (connectTimeoutMs < 1) {
            throw new IllegalArgumentException("sidecar.connect_timeout_ms must be >= 1, got " + connectTimeoutMs);
        }
        if (breakerWindowMs < 100) {
            throw new IllegalArgumentException("sidecar.breaker.window_ms must be >= 100, got " + breakerWindowMs);
        }
        if (breakerMinCalls < 1) {
            throw new IllegalArgumentException("sidecar.breaker.min_calls must be >= 1, got " + breakerMinCalls);
        }
        if (!(breakerFailureRate > 0 && breakerFailureRate <= 1)) {
            throw new IllegalArgumentException("sidecar.breaker.failure_rate must be in (0, 1], got " + breakerFailureRate);
        }
        if (breakerCooldownMs < 0 || breakerRampMs < 0) {
            throw new IllegalArgumentException("sidecar.breaker.cooldown_ms and sidecar.breaker.ramp_ms must be >= 0");
        }
        if (breakerProbes < 1) {
            throw new IllegalArgumentException("sidecar.breaker.probes must be >= 1, got " + breakerProbes);
        }
        if (breakerConsecutiveFailures < 0) {
            throw new IllegalArgumentException("sidecar.breaker.consecutive_failures must be >= 0, got " + breakerConsecutiveFailures);
        }
        if (fallbackMode == null) {
            fallbackMode = ShardRescore.FallbackMode.RANK_MAPPED;
        }
    }

    /** A node setting's name and default, as both engines register it (a string setting parsed here). */
    public record Key(String name, String defaultValue) {}

    /** Every node setting, in the order the engines register them. */
    public static final java.util.List<Key> KEYS = java.util.List.of(
        new Key("sidecar.url", DEFAULT_URL),
        new Key("sidecar.timeout_ms", Integer.toString(DEFAULT_TIMEOUT_MS)),
        new Key("sidecar.connect_timeout_ms", Integer.toString(DEFAULT_CONNECT_TIMEOUT_MS)),
        new Key("sidecar.breaker.window_ms", Integer.toString(DEFAULT_BREAKER_WINDOW_MS)),
        new Key("sidecar.breaker.min_calls", Integer.toString(DEFAULT_BREAKER_MIN_CALLS)),
        new Key("sidecar.breaker.failure_rate", Double.toString(DEFAULT_BREAKER_FAILURE_RATE)),
        new Key("sidecar.breaker.cooldown_ms", Integer.toString(DEFAULT_BREAKER_COOLDOWN_MS)),
        new Key("sidecar.breaker.probes", Integer.toString(DEFAULT_BREAKER_PROBES)),
        new Key("sidecar.breaker.ramp_ms", Integer.toString(DEFAULT_BREAKER_RAMP_MS)),
        new Key("sidecar.breaker.consecutive_failures", Integer.toString(DEFAULT_BREAKER_CONSECUTIVE_FAILURES)),
        new Key("sidecar.fallback_scores", DEFAULT_FALLBACK_SCORES));

    /**
     * The settings from their string values ({@code value.apply(name)}: the node's value or the
     * default); a value that is not a number where one is needed, or out of range, is an
     * {@link IllegalArgumentException} naming the setting, which stops the node at start-up.
     */
    public static SidecarSettings fromValues(java.util.function.Function<String, String> value) {
        return new SidecarSettings(rescoreUri(value.apply("sidecar.url")), intValue(value, "sidecar.timeout_ms"),
            intValue(value, "sidecar.connect_timeout_ms"), intValue(value, "sidecar.breaker.window_ms"),
            intValue(value, "sidecar.breaker.min_calls"), doubleValue(value, "sidecar.breaker.failure_rate"),
            intValue(value, "sidecar.breaker.cooldown_ms"), intValue(value, "sidecar.breaker.probes"),
            intValue(value, "sidecar.breaker.ramp_ms"), intValue(value, "sidecar.breaker.consecutive_failures"), ShardRescore.FallbackMode.fromSetting(value.apply("sidecar.fallback_scores")));
    }

    private static int intValue(java.util.function.Function<String, String> value, String name) {
        String v = value.apply(name);
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be an integer, got [" + v + "]", e);
        }
    }

    private static double doubleValue(java.util.function.Function<String, String> value, String name) {
        String v = value.apply(name);
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be a number, got [" + v + "]", e);
        }
    }

    /** Settings with the defaults, sending to {@code url}. */
    public static SidecarSettings withUrl(String url) {
        return new SidecarSettings(rescoreUri(url), DEFAULT_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_BREAKER_WINDOW_MS,
            DEFAULT_BREAKER_MIN_CALLS, DEFAULT_BREAKER_FAILURE_RATE, DEFAULT_BREAKER_COOLDOWN_MS, DEFAULT_BREAKER_PROBES,
            DEFAULT_BREAKER_RAMP_MS, DEFAULT_BREAKER_CONSECUTIVE_FAILURES, ShardRescore.FallbackMode.RANK_MAPPED);
    }

    public static SidecarSettings defaults() {
        return withUrl(DEFAULT_URL);
    }

    public SidecarSettings withTimeouts(int timeoutMs, int connectMs) {
        return new SidecarSettings(rescoreUri, timeoutMs, connectMs, breakerWindowMs, breakerMinCalls, breakerFailureRate,
            breakerCooldownMs, breakerProbes, breakerRampMs, breakerConsecutiveFailures, fallbackMode);
    }

    /** The breaker's rate rule only (no opening on a run of failures), as the tests that count calls need it. */
    public SidecarSettings withBreaker(int windowMs, int minCalls, double failureRate, int cooldownMs, int probes, int rampMs) {
        return withBreaker(windowMs, minCalls, failureRate, cooldownMs, probes, rampMs, 0);
    }

    public SidecarSettings withBreaker(int windowMs, int minCalls, double failureRate, int cooldownMs, int probes, int rampMs,
                                       int consecutiveFailures) {
        return new SidecarSettings(rescoreUri, defaultTimeoutMs, connectTimeoutMs, windowMs, minCalls, failureRate, cooldownMs,
            probes, rampMs, consecutiveFailures, fallbackMode);
    }

    public SidecarSettings withFallbackMode(ShardRescore.FallbackMode mode) {
        return new SidecarSettings(rescoreUri, defaultTimeoutMs, connectTimeoutMs, breakerWindowMs, breakerMinCalls,
            breakerFailureRate, breakerCooldownMs, breakerProbes, breakerRampMs, breakerConsecutiveFailures, mode);
    }

    /** {@code http://<loopback host>:<port>} → the {@code /v1/rescore} URI; anything else is refused. */
    public static URI rescoreUri(String url) {
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
}
