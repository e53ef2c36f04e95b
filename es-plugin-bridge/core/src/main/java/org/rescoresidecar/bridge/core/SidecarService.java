package org.rescoresidecar.bridge.core;

import java.io.Closeable;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.LongSupplier;

/**
 * One per node (owned by the engine's plugin instance): the client, the breaker, the score history
 * and the counters. {@link #rescore} never throws: every failure becomes an {@link Outcome} that
 * keeps the baseline, counted by reason.
 *
 * <p>What feeds the breaker: the sidecar's faults (connection refused or reset, timeouts, 5xx,
 * malformed or wrong-length answers) and its own load shedding ({@code fallback} "overloaded" or
 * "timeout") are failures; any other answer in time is a success; a 4xx is the search's own error
 * ({@code request_error}), which leaves the breaker untouched, as does a bug in the bridge.
 */
public final class SidecarService implements Closeable {
    /** The sidecar's fallbacks that mean it is shedding load: they count against it. */
    static final Set<String> SHEDDING = Set.of("overloaded", "timeout");

    private final SidecarSettings settings;
    private final SidecarClient client;
    private final CircuitBreaker breaker;
    private final ScoreHistory history = new ScoreHistory();
    private final FallbackMemo memo;
    private final BridgeCounters counters = new BridgeCounters();
    private volatile String lastFailure = "";

    public SidecarService(SidecarSettings settings) {
        this(settings, System::nanoTime);
    }

    SidecarService(SidecarSettings settings, LongSupplier clock) {
        this.settings = settings;
        this.client = new SidecarClient(settings);
        this.breaker = new CircuitBreaker(settings.breakerWindowMs(), settings.breakerMinCalls(), settings.breakerFailureRate(),
            settings.breakerCooldownMs(), settings.breakerProbes(), settings.breakerRampMs(),
            settings.breakerConsecutiveFailures(), clock);
        this.memo = new FallbackMemo(clock);
    }

    /** Opens a keep-alive connection off the search path; best effort, never fails. */
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

    /** One shard's window, on the search path: governed by (and feeding) the breaker. */
    public Outcome rescore(RescoreParams params, List<HitInput> hits) {
        if (hits.isEmpty()) {
            return Outcome.rescored(new double[0], new SidecarResult(new double[0], params.model(), null, null, null, 0), 0);
        }
        counters.onCall();
        CircuitBreaker.Permit permit = breaker.tryAcquire();
        if (permit == null) {
            counters.onFallback(FallbackReason.BREAKER_OPEN);
            return Outcome.fallback(FallbackReason.BREAKER_OPEN, "circuit breaker " + breaker.state().name().toLowerCase(java.util.Locale.ROOT)
                + " (last failure: " + lastFailure + ")");
        }
        try {
            Outcome o = call(params, hits);
            if (o.isRescored()) {
                permit.success();
            } else if (o.reason() == FallbackReason.SIDECAR_FALLBACK) {
                if (SHEDDING.contains(o.sidecarReason())) {
                    permit.failure();
                } else {
                    permit.success(); // it answered in time and chose to fall back: healthy
                }
            } else if (o.reason() != FallbackReason.REQUEST_ERROR && o.reason() != FallbackReason.ERROR) {
                permit.failure();
            }
            counters.onFallbackOrNot(o);
            return o;
        } finally {
            permit.release(); // any Throwable: a probe never stays claimed
        }
    }

    /** An explain call: never feeds the breaker, and is skipped while the breaker keeps calls out. */
    public Outcome explainCall(RescoreParams params, List<HitInput> hits) {
        if (!breaker.allowsCalls()) {
            return Outcome.fallback(FallbackReason.BREAKER_OPEN, "circuit breaker " + breaker.state().name().toLowerCase(java.util.Locale.ROOT));
        }
        return call(params, hits);
    }

    private Outcome call(RescoreParams params, List<HitInput> hits) {
        int timeoutMs = timeoutMs(params);
        long start = System.nanoTime();
        try {
            SidecarResult result = client.post(out -> SidecarJson.writeRequest(out, params, hits, sidecarBudgetMs(timeoutMs)),
                timeoutMs, maxResponseBytes(hits.size()),
                (body, length) -> SidecarJson.parseResponse(new java.io.ByteArrayInputStream(body, 0, length), hits.size()));
            long micros = (System.nanoTime() - start) / 1000;
            if (result.fallback() != null) {
                return Outcome.sidecarFallback(result, "the sidecar fell back: " + result.fallback() + " (model " + result.model()
                    + ", version " + result.version() + ")");
            }
            return Outcome.rescored(result.scores(), result, micros);
        } catch (SidecarException e) {
            lastFailure = e.reason().label() + ": " + e.getMessage();
            return Outcome.fallback(e.reason(), e.getMessage());
        } catch (RuntimeException e) {
            // never let a bug in the bridge fail a search: keep the baseline and count it
            lastFailure = "error: " + e;
            return Outcome.fallback(FallbackReason.ERROR, e.toString());
        }
    }

    /**
     * The whole shard step on the search path: one call for the window, then the shard's new
     * order ({@link ShardRescore}); a fallen-back window's scores are remembered for explain.
     *
     * @param segments per window hit, its segment's identity (for explain's memo; may hold nulls)
     * @param segmentDocs per window hit, its segment-local doc id
     */
    public ShardRescore rescoreShard(RescoreParams params, float[] firstPass, int[] docs, int window, List<HitInput> hits,
                                     Object[] segments, int[] segmentDocs) {
        Outcome o = rescore(params, hits);
        ShardRescore r = ShardRescore.apply(params, firstPass, docs, window, o.isRescored() ? o.modelScores() : null, history,
            settings.fallbackMode());
        counters.onPlacement(r.placement());
        if (!o.isRescored()) {
            float[] used = new float[window];
            for (int i = 0; i < window; i++) {
                used[r.docIndex(i)] = r.score(i);
            }
            memo.remember(params.requestId(), segments, segmentDocs, used, describeFallback(r.placement(), o));
        }
        return r;
    }

    static String describeFallback(ShardRescore.Placement placement, Outcome o) {
        String why = o.reason().label() + (o.sidecarReason() != null ? " " + o.sidecarReason() : "");
        return placement == ShardRescore.Placement.RANK_MAPPED
            ? "the shard fell back (" + why + "): first-pass rank mapped onto the model's recent scores at that rank"
            : "the shard fell back (" + why + "): placed below every model-scored hit, first-pass order kept";
    }

    public FallbackMemo.Entry recallFallback(String requestId, Object segment, int doc) {
        return memo.recall(requestId, segment, doc);
    }

    public BridgeCounters counters() {
        return counters;
    }

    public CircuitBreaker breaker() {
        return breaker;
    }

    public Map<String, Object> stats() {
        Map<String, Object> out = counters.snapshot();
        out.put("breaker_open", breaker.isOpen());
        out.put("breaker_state", breaker.state().name().toLowerCase(java.util.Locale.ROOT));
        out.put("breaker_opened", breaker.timesOpened());
        out.put("stale_retries", client.staleRetries());
        out.put("connections_opened", client.connectionsOpened());
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

        static Outcome sidecarFallback(SidecarResult result, String detail) {
            return new Outcome(null, result, FallbackReason.SIDECAR_FALLBACK, detail, 0);
        }

        public boolean isRescored() { return reason == null; }
        /** One model score per input hit, or null on fallback. */
        public double[] modelScores() { return modelScores; }
        public SidecarResult result() { return result; }
        public FallbackReason reason() { return reason; }
        /** The sidecar's own fallback reason when {@link #reason()} is {@code SIDECAR_FALLBACK}. */
        public String sidecarReason() { return result == null ? null : result.fallback(); }
        public String detail() { return detail; }
        public long micros() { return micros; }
    }
}
