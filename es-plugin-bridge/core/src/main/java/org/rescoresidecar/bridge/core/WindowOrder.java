package org.rescoresidecar.bridge.core;

import java.util.Arrays;

/**
 * Ordering rules shared by both engines, on plain arrays so they are unit-testable without Lucene:
 * window hits are sorted by their new score (descending, ties by doc id like Lucene's rescorers);
 * hits past the window keep their relative order and are pushed just below the window's lowest
 * score when their first-pass score would otherwise overtake a rescored hit.
 */
public final class WindowOrder {
    private WindowOrder() {}

    /** Indices into {@code docs}, ascending doc id: the order to read doc values in. */
    public static Integer[] docIdOrder(int[] docs) {
        Integer[] idx = new Integer[docs.length];
        for (int i = 0; i < idx.length; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, (a, b) -> Integer.compare(docs[a], docs[b]));
        return idx;
    }

    /** Indices into the window, best first: score descending, then doc id ascending. */
    public static int[] rescoredOrder(float[] newScores, int[] docs) {
        Integer[] idx = new Integer[newScores.length];
        for (int i = 0; i < idx.length; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, (a, b) -> {
            int c = Float.compare(newScores[b], newScores[a]);
            return c != 0 ? c : Integer.compare(docs[a], docs[b]);
        });
        return Arrays.stream(idx).mapToInt(Integer::intValue).toArray();
    }

    /** Scores for the hits after the window (in their original order), all strictly below {@code windowMin}. */
    public static float[] belowWindow(float windowMin, float[] beyondScores) {
        float[] out = new float[beyondScores.length];
        float ceiling = windowMin;
        for (int i = 0; i < beyondScores.length; i++) {
            float below = Math.nextDown(ceiling);
            out[i] = Math.min(beyondScores[i], below);
            ceiling = out[i];
        }
        return out;
    }
}
