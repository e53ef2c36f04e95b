package org.rescoresidecar.bridge.core;

import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/** Per-node counters, exposed by the engine modules at {@code GET /_sidecar/stats}. */
public final class BridgeCounters {
    private final LongAdder calls = new LongAdder();
    private final LongAdder rescored = new LongAdder();
    private final LongAdder hitsRescored = new LongAdder();
    private final LongAdder callMicros = new LongAdder();
    private final Map<FallbackReason, LongAdder> fallbacks = new EnumMap<>(FallbackReason.class);

    public BridgeCounters() {
        for (FallbackReason reason : FallbackReason.values()) {
            fallbacks.put(reason, new LongAdder()); // every reason is reported from start-up, at 0
        }
    }

    void onCall() {
        calls.increment();
    }

    void onRescored(int hits, long micros) {
        rescored.increment();
        hitsRescored.add(hits);
        callMicros.add(micros);
    }

    void onFallback(FallbackReason reason) {
        fallbacks.get(reason).increment();
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

    /** Stable, JSON-friendly snapshot: {@code calls, rescored, hits_rescored, call_micros_total, fallbacks{reason}}. */
    public Map<String, Object> snapshot(boolean breakerOpen) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("calls", calls.sum());
        out.put("rescored", rescored.sum());
        out.put("hits_rescored", hitsRescored.sum());
        out.put("call_micros_total", callMicros.sum());
        Map<String, Long> fb = new LinkedHashMap<>();
        for (Map.Entry<FallbackReason, LongAdder> e : fallbacks.entrySet()) {
            fb.put(e.getKey().label(), e.getValue().sum());
        }
        out.put("fallbacks", fb);
        out.put("breaker_open", breakerOpen);
        return out;
    }
}
