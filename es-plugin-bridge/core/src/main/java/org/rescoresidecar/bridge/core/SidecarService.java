package org.rescoresidecar.bridge.core;

import java.io.Closeable;
import java.util.List;
import java.util.Map;

/**
 * One per node: the client, the breaker and the counters. {@link #rescore} never throws: every
 * failure becomes an {@link Outcome} that keeps the baseline, counted by reason.
 */
public final class SidecarService implements Closeable {
    private final SidecarSettings settings;
    private final SidecarClient client;
    private final CircuitBreaker breaker;
    private final BridgeCounters counters = new BridgeCounters();
    private volatile String lastFailure = "";

    public SidecarService(SidecarSettings settings) {
        this.settings = settings;
        this.client = new SidecarClient(settings);
        this.breaker = new CircuitBreaker(settings.breakerFailures(), settings.breakerCooldownMs(), System::nanoTime);
    }

    /**
     * Loads the HTTP client's classes and opens a keep-alive connection off the search path (a
     * cold JVM's first call can take longer than a 30 ms budget). Fire-and-forget: never waits.
     */
    public void warmUp() {
        client.warmUp();
    }

    public SidecarSettings settings() {
        return settings;
    }

    public int timeoutMs(RescoreParams params) {
        return params.timeoutMs() != null ? params.timeoutMs() : settings.defaultTimeoutMs();
    }

    /**
     * The sidecar's own budget: a little less than ours, so it answers with its {@code fallback}
     * (and counts it) rather than being cut off by us.
     */
    static int sidecarBudgetMs(int timeoutMs) {
        return Math.max(1, timeoutMs - Math.max(1, timeoutMs / 5));
    }

    /** Generous for the contract's answer (one number per hit plus a few short strings). */
    static long maxResponseBytes(int hits) {
        return 64 * 1024 + 64L * hits;
    }

    public Outcome rescore(RescoreParams params, List<HitInput> hits) {
        if (hits.isEmpty()) {
            return Outcome.rescored(new double[0], new SidecarResult(new double[0], params.model(), null, null, null, 0), 0);
        }
        counters.onCall();
        if (!breaker.tryAcquire()) {
            counters.onFallback(FallbackReason.BREAKER_OPEN);
            return Outcome.fallback(FallbackReason.BREAKER_OPEN, "circuit breaker open after " + settings.breakerFailures()
                + " consecutive failures (last: " + lastFailure + "); retrying after " + settings.breakerCooldownMs() + " ms");
        }
        int timeoutMs = timeoutMs(params);
        long start = System.nanoTime();
        try {
            byte[] body = SidecarJson.writeRequest(params, hits, sidecarBudgetMs(timeoutMs));
            SidecarResult result = SidecarJson.parseResponse(client.post(body, timeoutMs, maxResponseBytes(hits.size())), hits.size());
            long micros = (System.nanoTime() - start) / 1000;
            breaker.onSuccess(); // it answered in time: healthy, even if it chose to fall back
            if (result.fallback() != null) {
                counters.onFallback(FallbackReason.SIDECAR_FALLBACK);
                return Outcome.fallback(FallbackReason.SIDECAR_FALLBACK, "the sidecar fell back: " + result.fallback()
                    + " (model " + result.model() + ", version " + result.version() + ")");
            }
            counters.onRescored(hits.size(), micros);
            return Outcome.rescored(result.scores(), result, micros);
        } catch (SidecarException e) {
            breaker.onFailure();
            counters.onFallback(e.reason());
            lastFailure = e.reason().label() + ": " + e.getMessage();
            return Outcome.fallback(e.reason(), e.getMessage());
        } catch (RuntimeException e) {
            // never let a bug in the bridge fail a search: keep the baseline and count it
            breaker.onFailure();
            counters.onFallback(FallbackReason.ERROR);
            lastFailure = "error: " + e;
            return Outcome.fallback(FallbackReason.ERROR, e.toString());
        }
    }

    public BridgeCounters counters() {
        return counters;
    }

    public Map<String, Object> stats() {
        Map<String, Object> out = counters.snapshot(breaker.isOpen());
        out.put("last_failure", lastFailure);
        out.put("url", settings.rescoreUri().toString());
        return out;
    }

    @Override
    public void close() {
        client.close();
    }

    /** What happened to one shard's window. */
    public static final class Outcome {
        private final double[] modelScores;
        private final SidecarResult result;
        private final FallbackReason reason;
        private final String detail;
        private final long micros;

        private Outcome(double[] modelScores, SidecarResult result, FallbackReason reason, String detail, long micros) {
            this.modelScores = modelScores;
            this.result = result;
            this.reason = reason;
            this.detail = detail;
            this.micros = micros;
        }

        static Outcome rescored(double[] scores, SidecarResult result, long micros) {
            return new Outcome(scores, result, null, null, micros);
        }

        static Outcome fallback(FallbackReason reason, String detail) {
            return new Outcome(null, null, reason, detail, 0);
        }

        public boolean isRescored() { return reason == null; }
        /** One model score per input hit, or null on fallback. */
        public double[] modelScores() { return modelScores; }
        public SidecarResult result() { return result; }
        public FallbackReason reason() { return reason; }
        public String detail() { return detail; }
        public long micros() { return micros; }
    }
}
