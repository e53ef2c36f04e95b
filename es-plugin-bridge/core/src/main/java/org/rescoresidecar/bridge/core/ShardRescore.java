package org.rescoresidecar.bridge.core;

import java.util.Arrays;

/**
 * One shard's new order, engine-independent: the top docs arrive sorted by first-pass score; the
 * first {@code window} of them were sent to the sidecar. The result says, for each output rank,
 * which input doc goes there and with which score:
 * <ul>
 *   <li>rescored window: the combined score, sorted (score descending, then doc id);</li>
 *   <li>fallen-back window ({@link FallbackMode#RANK_MAPPED}, history known): the model's recent
 *   score at the same rank ({@link ScoreHistory}), first-pass order kept;</li>
 *   <li>otherwise, and for every hit past the window: {@link TailScores#below}, below every
 *   model-scored hit of any shard, first-pass order kept.</li>
 * </ul>
 */
public final class ShardRescore {
    /** How a window is placed when the shard fell back. */
    public enum FallbackMode {
        /** On the model's recent scores by rank, so the shard's hits interleave with other shards'. */
        RANK_MAPPED,
        /** Below every model-scored hit (first-pass order), like the tail. */
        BELOW_RESCORED;

        public static FallbackMode fromSetting(String v) {
            switch (v) {
                case "rank_mapped":
                    return RANK_MAPPED;
                case "below_rescored":
                    return BELOW_RESCORED;
                default:
                    throw new IllegalArgumentException("sidecar.fallback_scores must be \"rank_mapped\" or \"below_rescored\", got [" + v + "]");
            }
        }
    }

    /** How the window's scores were made. */
    public enum Placement { RESCORED, RANK_MAPPED, BELOW_RESCORED }

    private final int[] order;
    private final float[] scores;
    private final Placement placement;

    private ShardRescore(int[] order, float[] scores, Placement placement) {
        this.order = order;
        this.scores = scores;
        this.placement = placement;
    }

    /** Input index of the hit at output rank {@code i}. */
    public int docIndex(int i) {
        return order[i];
    }

    public float score(int i) {
        return scores[i];
    }

    public int size() {
        return order.length;
    }

    public Placement placement() {
        return placement;
    }

    /**
     * @param firstPass the shard's top docs' scores, sorted descending
     * @param docs      their doc ids
     * @param window    how many of them were sent (the first {@code window})
     * @param modelScores one per window hit, or null when the shard fell back
     */
    public static ShardRescore apply(RescoreParams params, float[] firstPass, int[] docs, int window, double[] modelScores,
                                     ScoreHistory history, FallbackMode mode) {
        int total = firstPass.length;
        int[] order = new int[total];
        float[] scores = new float[total];
        Placement placement;
        if (modelScores != null) {
            float[] combined = new float[window];
            int[] windowDocs = Arrays.copyOf(docs, window);
            for (int i = 0; i < window; i++) {
                combined[i] = params.combine(firstPass[i], modelScores[i]);
            }
            int[] sorted = WindowOrder.rescoredOrder(combined, windowDocs);
            float[] best = new float[window];
            for (int i = 0; i < window; i++) {
                order[i] = sorted[i];
                scores[i] = combined[sorted[i]];
                best[i] = scores[i];
            }
            history.observe(params.model(), window, best);
            placement = Placement.RESCORED;
        } else {
            float[] mapped = mode == FallbackMode.RANK_MAPPED ? history.map(params.model(), window, window) : null;
            for (int i = 0; i < window; i++) {
                order[i] = i;
                scores[i] = mapped != null ? mapped[i] : TailScores.below(firstPass[i]);
            }
            placement = mapped != null ? Placement.RANK_MAPPED : Placement.BELOW_RESCORED;
        }
        for (int i = window; i < total; i++) {
            order[i] = i;
            scores[i] = TailScores.below(firstPass[i]);
        }
        return new ShardRescore(order, scores, placement);
    }
}
