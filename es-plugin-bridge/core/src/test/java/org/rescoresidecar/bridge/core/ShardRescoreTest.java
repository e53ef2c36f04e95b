package org.rescoresidecar.bridge.core;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ShardRescoreTest {
    static final RescoreParams REPLACE = RescoreParams.of("m", "item_id");
    static final float[] FIRST = {9f, 8f, 7f, 6f, 5f, 4f};
    static final int[] DOCS = {10, 11, 12, 13, 14, 15};

    static int[] order(ShardRescore r) {
        int[] o = new int[r.size()];
        for (int i = 0; i < o.length; i++) {
            o[i] = r.docIndex(i);
        }
        return o;
    }

    @Test
    void docValuesAreReadInDocIdOrderAndTiesGoByDocId() {
        Integer[] order = WindowOrder.docIdOrder(new int[] {40, 2, 17, 5});
        assertArrayEquals(new Integer[] {1, 3, 2, 0}, order);
        assertArrayEquals(new int[] {1, 0, 2, 3}, WindowOrder.rescoredOrder(new float[] {1f, 2f, 1f, 0f}, new int[] {7, 3, 9, 1}));
    }

    @Test
    void rescoredWindowIsSortedAndTheTailGoesBelowEveryModelScore() {
        ScoreHistory h = new ScoreHistory();
        ShardRescore r = ShardRescore.apply(REPLACE, FIRST, DOCS, 4, new double[] {-3, 1, -1e6, 2}, h, ShardRescore.FallbackMode.RANK_MAPPED);
        assertEquals(ShardRescore.Placement.RESCORED, r.placement());
        assertArrayEquals(new int[] {3, 1, 0, 2, 4, 5}, order(r));
        assertEquals(2f, r.score(0));
        assertEquals(-1e6f, r.score(3));
        assertTrue(r.score(4) < -1e30f && r.score(4) > r.score(5), "tail: below any model score, first-pass order");
    }

    @Test
    void weightedCombination() {
        RescoreParams weighted = RescoreParams.fromDsl(RescoreParamsTest.json(
            "{\"id_field\": \"id\", \"score_mode\": \"weighted\", \"query_weight\": 0.1, \"model_weight\": 10}"));
        ShardRescore r = ShardRescore.apply(weighted, new float[] {5f, 4f}, new int[] {0, 1}, 2, new double[] {0.1, 0.2}, new ScoreHistory(),
            ShardRescore.FallbackMode.RANK_MAPPED);
        assertArrayEquals(new int[] {1, 0}, order(r));
        assertEquals((float) (0.1f * 4.0 + 10 * 0.2), r.score(0));
    }

    @Test
    void aFallenBackShardIsPlacedOnTheModelsRecentScoresByRank() {
        ScoreHistory h = new ScoreHistory();
        ShardRescore none = ShardRescore.apply(REPLACE, FIRST, DOCS, 4, null, h, ShardRescore.FallbackMode.RANK_MAPPED);
        assertEquals(ShardRescore.Placement.BELOW_RESCORED, none.placement(), "no history yet: below every model score");
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5}, order(none));
        assertTrue(none.score(0) < -1e30f && none.score(0) > none.score(1));
        ShardRescore.apply(REPLACE, FIRST, DOCS, 4, new double[] {1.5, 1.0, 0.5, 0.0}, h, ShardRescore.FallbackMode.RANK_MAPPED);
        ShardRescore mapped = ShardRescore.apply(REPLACE, FIRST, DOCS, 4, null, h, ShardRescore.FallbackMode.RANK_MAPPED);
        assertEquals(ShardRescore.Placement.RANK_MAPPED, mapped.placement());
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5}, order(mapped), "the shard's first-pass order is kept");
        assertArrayEquals(new float[] {1.5f, 1.0f, 0.5f, 0.0f}, new float[] {mapped.score(0), mapped.score(1), mapped.score(2), mapped.score(3)});
        assertTrue(mapped.score(4) < -1e30f);
        // the mean moves towards newer windows
        ShardRescore.apply(REPLACE, FIRST, DOCS, 4, new double[] {11.5, 11.0, 10.5, 10.0}, h, ShardRescore.FallbackMode.RANK_MAPPED);
        assertEquals(2.5f, ShardRescore.apply(REPLACE, FIRST, DOCS, 4, null, h, ShardRescore.FallbackMode.RANK_MAPPED).score(0), 1e-6f);
        ShardRescore below = ShardRescore.apply(REPLACE, FIRST, DOCS, 4, null, h, ShardRescore.FallbackMode.BELOW_RESCORED);
        assertEquals(ShardRescore.Placement.BELOW_RESCORED, below.placement(), "the operator's choice");
        assertEquals(ShardRescore.Placement.BELOW_RESCORED,
            ShardRescore.apply(REPLACE, FIRST, DOCS, 3, null, h, ShardRescore.FallbackMode.RANK_MAPPED).placement(),
            "history is per window size");
    }

    @Test
    void tailScoresAreStrictlyIncreasingInTheFirstPassScoreAndBelowAnyModelScore() {
        float prev = TailScores.below(-1000f);
        for (float s : new float[] {-5f, -0.5f, 0f, 0.001f, 1f, 4.6f, 4.7f, 12f, 40f}) {
            float t = TailScores.below(s);
            assertTrue(t > prev, "not increasing at " + s);
            assertTrue(t < -1e30f && t >= -2e30f, "out of range at " + s + ": " + t);
            prev = t;
        }
    }

    @Test
    void fallbackMemoRemembersWhatTheShardUsed() {
        java.util.concurrent.atomic.AtomicLong clock = new java.util.concurrent.atomic.AtomicLong();
        FallbackMemo memo = new FallbackMemo(clock::get);
        Object seg = new Object();
        memo.remember("r1", new Object[] {seg, seg}, new int[] {3, 4}, new float[] {1.5f, 1f}, "why");
        assertEquals(1.5f, memo.recall("r1", seg, 3).score());
        assertEquals(null, memo.recall("r2", seg, 3));
        assertEquals(null, memo.recall(null, seg, 3));
        clock.addAndGet(FallbackMemo.MAX_AGE_NANOS + 1);
        assertEquals(null, memo.recall("r1", seg, 3), "entries age out");
    }
}
