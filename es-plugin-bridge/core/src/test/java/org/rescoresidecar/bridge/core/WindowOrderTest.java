package org.rescoresidecar.bridge.core;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WindowOrderTest {
    @Test
    void windowIsSortedByNewScoreThenDocId() {
        int[] docs = {7, 3, 9, 1};
        float[] scores = {0.5f, 2.0f, 0.5f, -1f};
        assertArrayEquals(new int[] {1, 0, 2, 3}, WindowOrder.rescoredOrder(scores, docs));
    }

    @Test
    void docIdOrderVisitsDocsAscending() {
        Integer[] order = WindowOrder.docIdOrder(new int[] {40, 2, 17, 5});
        assertArrayEquals(new Integer[] {1, 3, 2, 0}, order);
    }

    @Test
    void hitsBeyondTheWindowStayBelowInTheirOrder() {
        // the model gave the window low scores; the tail's BM25 scores are higher but must stay below
        float[] tail = {9f, 8f, 8f, 0.01f};
        float[] out = WindowOrder.belowWindow(0.5f, tail);
        assertTrue(out[0] < 0.5f);
        for (int i = 1; i < out.length; i++) {
            assertTrue(out[i] < out[i - 1], "strictly decreasing at " + i);
        }
        assertArrayEquals(new float[] {Math.nextDown(0.5f), Math.nextDown(Math.nextDown(0.5f)),
            Math.nextDown(Math.nextDown(Math.nextDown(0.5f))), 0.01f}, out);
    }

    @Test
    void tailAlreadyBelowKeepsItsScores() {
        assertArrayEquals(new float[] {0.3f, 0.2f}, WindowOrder.belowWindow(5f, new float[] {0.3f, 0.2f}));
    }

    @Test
    void rescoringHandBuiltHitsEndToEnd() {
        // five hits in BM25 order; the model prefers the last two
        int[] docs = {10, 11, 12, 13, 14};
        float[] bm25 = {5f, 4f, 3f, 2f, 1f};
        double[] model = {0.1, 0.2, 0.3, 0.9, 0.8};
        RescoreParams replace = new RescoreParams("m", "item_id", null, null, null, null, ScoreMode.REPLACE, null, null);
        RescoreParams weighted = new RescoreParams("m", "item_id", null, null, null, null, ScoreMode.WEIGHTED, 0.1f, 10f);
        float[] r = new float[5];
        float[] w = new float[5];
        for (int i = 0; i < 5; i++) {
            r[i] = replace.combine(bm25[i], model[i]);
            w[i] = weighted.combine(bm25[i], model[i]);
        }
        assertArrayEquals(new int[] {3, 4, 2, 1, 0}, WindowOrder.rescoredOrder(r, docs));
        // weighted: 0.1*bm25 + 10*model = {1.5, 2.4, 3.3, 9.2, 8.1}
        assertArrayEquals(new int[] {3, 4, 2, 1, 0}, WindowOrder.rescoredOrder(w, docs));
        assertArrayEquals(new float[] {1.5f, 2.4f, 3.3f, 9.2f, 8.1f}, w, 1e-5f);
    }
}
