package org.rescoresidecar.bridge.core;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * The scores a fallen-back shard gave its window hits, remembered briefly so that explain (which
 * runs in the fetch phase, after the query phase's rescoring) shows the value actually used rather
 * than what a new call would give. Keyed by the search's request id and the hit's segment and
 * segment-local doc id (stable between the phases of one search). Written only on fallback, bounded
 * in entries and age.
 */
public final class FallbackMemo {
    static final int MAX_ENTRIES = 20_000;
    static final long MAX_AGE_NANOS = 60_000_000_000L;

    /** What the shard did with one hit. */
    public record Entry(float score, String how, long atNanos) {}

    private record Key(String requestId, Object segment, int doc) {}

    private final LongSupplier clock;
    private final Map<Key, Entry> entries = new LinkedHashMap<>(256, 0.75f, false) {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<Key, Entry> eldest) {
            return size() > MAX_ENTRIES || clock.getAsLong() - eldest.getValue().atNanos() > MAX_AGE_NANOS;
        }
    };

    public FallbackMemo(LongSupplier clock) {
        this.clock = clock;
    }

    public void remember(String requestId, Object[] segments, int[] docs, float[] scores, String how) {
        if (requestId == null) {
            return;
        }
        long now = clock.getAsLong();
        synchronized (entries) {
            for (int i = 0; i < docs.length; i++) {
                if (segments[i] != null) {
                    entries.put(new Key(requestId, segments[i], docs[i]), new Entry(scores[i], how, now));
                }
            }
        }
    }

    /** The remembered entry, or null (not a fallback, evicted, or no request id). */
    public Entry recall(String requestId, Object segment, int doc) {
        if (requestId == null || segment == null) {
            return null;
        }
        synchronized (entries) {
            Entry e = entries.get(new Key(requestId, segment, doc));
            return e == null || clock.getAsLong() - e.atNanos() > MAX_AGE_NANOS ? null : e;
        }
    }
}
