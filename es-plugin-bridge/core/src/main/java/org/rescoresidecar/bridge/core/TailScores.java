package org.rescoresidecar.bridge.core;

/**
 * Scores for hits that keep their first-pass score as their order: hits past the rescore window,
 * and a fallen-back window when no model scores are known to map it onto. They must sort below
 * every model-scored hit of any shard (the coordinator merges shards by raw score) and keep their
 * first-pass order among themselves, across shards too. A fixed, strictly increasing map of the
 * first-pass score into [-2e30, -1e30) does both without knowing the model's range, and depends on
 * the hit alone, so explain reproduces it exactly.
 */
public final class TailScores {
    static final float BASE = -1e30f;

    private TailScores() {}

    /** Strictly increasing in {@code firstPass} (within float resolution), always below {@code -1e30}. */
    public static float below(float firstPass) {
        double s = firstPass;
        // s -> (0, 2): 1 - s/(1+|s|) is strictly decreasing in s
        double x = 1 - s / (1 + Math.abs(s));
        return (float) (BASE * (1 + x / 2));
    }
}
