package org.rescoresidecar.bridge.core;

import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The scores successful answers gave, by rank in the shard's window, per model and window size:
 * an exponentially weighted mean of the r-th best final score over recent windows. A shard that
 * falls back places its hits on this curve by their first-pass rank, so that its hits interleave
 * with other shards' model-scored hits at the coordinator instead of taking over the page (BM25
 * scores and model scores are on different scales).
 */
public final class ScoreHistory {
    /** Weight of the newest window in the mean. */
    static final float ALPHA = 0.1f;
    /** Bounded: a key per (model, window size) actually used, at most this many. */
    static final int MAX_CURVES = 64;

    private record Key(String model, int window) {}

    private static final class Curve {
        private float[] byRank = new float[0];
        private long windows;

        synchronized void observe(float[] sortedDesc) {
            if (byRank.length < sortedDesc.length) {
                int old = byRank.length;
                byRank = Arrays.copyOf(byRank, sortedDesc.length);
                Arrays.fill(byRank, old, byRank.length, Float.NaN);
            }
            for (int r = 0; r < sortedDesc.length; r++) {
                float prev = byRank[r];
                byRank[r] = Float.isNaN(prev) ? sortedDesc[r] : prev + ALPHA * (sortedDesc[r] - prev);
            }
            windows++;
        }

        synchronized float[] map(int n) {
            if (windows == 0 || byRank.length == 0 || Float.isNaN(byRank[0])) {
                return null;
            }
            float[] out = new float[n];
            for (int r = 0; r < n; r++) {
                float v = r < byRank.length && !Float.isNaN(byRank[r]) ? byRank[r] : Float.POSITIVE_INFINITY;
                // strictly decreasing: the shard's own first-pass order is kept
                out[r] = r == 0 ? v : Math.min(v, Math.nextDown(out[r - 1]));
            }
            return out;
        }
    }

    private final ConcurrentHashMap<Key, Curve> curves = new ConcurrentHashMap<>();

    private static Key key(String model, int window) {
        return new Key(model == null ? "" : model, window);
    }

    /** Records a rescored window's final scores, best first. */
    public void observe(String model, int window, float[] sortedDesc) {
        if (sortedDesc.length == 0) {
            return;
        }
        Key k = key(model, window);
        Curve c = curves.get(k);
        if (c == null) {
            if (curves.size() >= MAX_CURVES) {
                return;
            }
            c = curves.computeIfAbsent(k, x -> new Curve());
        }
        c.observe(sortedDesc);
    }

    /** Scores for the first {@code n} hits of a fallen-back window (first-pass order), or null without history. */
    public float[] map(String model, int window, int n) {
        Curve c = curves.get(key(model, window));
        return c == null ? null : c.map(n);
    }
}
