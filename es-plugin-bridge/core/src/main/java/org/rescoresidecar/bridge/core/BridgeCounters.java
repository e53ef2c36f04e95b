package org.rescoresidecar.bridge.core;

import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/** Per-node counters, exposed by the engine modules at {@code GET /_sidecar/stats}. */
public final class BridgeCounters {
    /** Bounded: the sidecar's fallback reasons are a short documented list; others are lumped. */
    static final int MAX_SIDECAR_REASONS = 32;

    private final LongAdder calls = new LongAdder();
    private final LongAdder rescored = new LongAdder();
    private final LongAdder hitsRescored = new LongAdder();
    private final LongAdder callMicros = new LongAdder();
    private final LongAdder sidecarTookMicros = new LongAdder();
    private final LongAdder missingId = new LongAdder();
    private final LongAdder multiValuedId = new LongAdder();
    private final Map<FallbackReason, LongAdder> fallbacks = new EnumMap<>(FallbackReason.class);
    private final Map<ShardRescore.Placement, LongAdder> placements = new EnumMap<>(ShardRescore.Placement.class);
    private final ConcurrentHashMap<String, LongAdder> sidecarReasons = new ConcurrentHashMap<>();
    /** Whole sidecar calls as the bridge timed them, and that time minus the sidecar's own {@code took_us}. */
    private final LatencyHistogram callLatency = new LatencyHistogram();
    private final LatencyHistogram callOverhead = new LatencyHistogram();

    public BridgeCounters() {
        for (FallbackReason reason : FallbackReason.values()) {
            fallbacks.put(reason, new LongAdder()); // every reason is reported from start-up, at 0
        }
        for (ShardRescore.Placement p : ShardRescore.Placement.values()) {
            placements.put(p, new LongAdder());
        }
    }

    void onCall() {
        calls.increment();
    }

    void onRescored(int hits, long micros, long sidecarMicros) {
        rescored.increment();
        hitsRescored.add(hits);
        callMicros.add(micros);
        callLatency.record(micros);
        if (sidecarMicros > 0) {
            sidecarTookMicros.add(sidecarMicros);
            callOverhead.record(micros - sidecarMicros);
        }
    }

    void onFallbackOrNot(SidecarService.Outcome o) {
        if (o.isRescored()) {
            onRescored(o.modelScores().length, o.micros(), o.result().tookMicros());
            return;
        }
        onFallback(o.reason());
        if (o.sidecarReason() != null) {
            onSidecarFallback(o.sidecarReason());
        }
    }

    void onFallback(FallbackReason reason) {
        fallbacks.get(reason).increment();
    }

    void onSidecarFallback(String reason) {
        String key = sidecarReasons.containsKey(reason) || sidecarReasons.size() < MAX_SIDECAR_REASONS ? reason : "other";
        sidecarReasons.computeIfAbsent(key, k -> new LongAdder()).increment();
    }

    void onPlacement(ShardRescore.Placement p) {
        placements.get(p).increment();
    }

    /** Hits whose id field had no value (sent as an unknown item, id ""), and hits with several values. */
    public void onIds(int missing, int multiValued) {
        if (missing > 0) {
            missingId.add(missing);
        }
        if (multiValued > 0) {
            multiValuedId.add(multiValued);
        }
    }

    public long fallbacks(FallbackReason reason) {
        return fallbacks.get(reason).sum();
    }

    public long fallbacksTotal() {
        return fallbacks.values().stream().mapToLong(LongAdder::sum).sum();
    }

    public long rescored() {
        return rescored.sum();
    }

    public long placements(ShardRescore.Placement p) {
        return placements.get(p).sum();
    }

    /**
     * Stable, JSON-friendly snapshot: {@code calls, rescored, hits_rescored, call_micros_total,
     * sidecar_took_micros_total, call_micros{count,p50,p90,p99}, call_overhead_micros{...}, missing_id, multi_valued_id, fallbacks{reason},
     * sidecar_fallbacks{reason}, window_placements{rescored, rank_mapped, below_rescored}}.
     */
    public Map<String, Object> snapshot() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("calls", calls.sum());
        out.put("rescored", rescored.sum());
        out.put("hits_rescored", hitsRescored.sum());
        out.put("call_micros_total", callMicros.sum());
        out.put("sidecar_took_micros_total", sidecarTookMicros.sum());
        out.put("call_micros", callLatency.snapshot());
        out.put("call_overhead_micros", callOverhead.snapshot());
        out.put("missing_id", missingId.sum());
        out.put("multi_valued_id", multiValuedId.sum());
        Map<String, Long> fb = new LinkedHashMap<>();
        for (Map.Entry<FallbackReason, LongAdder> e : fallbacks.entrySet()) {
            fb.put(e.getKey().label(), e.getValue().sum());
        }
        out.put("fallbacks", fb);
        Map<String, Long> sr = new TreeMap<>();
        sidecarReasons.forEach((k, v) -> sr.put(k, v.sum()));
        out.put("sidecar_fallbacks", sr);
        Map<String, Long> pl = new LinkedHashMap<>();
        for (Map.Entry<ShardRescore.Placement, LongAdder> e : placements.entrySet()) {
            pl.put(e.getKey().name().toLowerCase(java.util.Locale.ROOT), e.getValue().sum());
        }
        out.put("window_placements", pl);
        return out;
    }
}
