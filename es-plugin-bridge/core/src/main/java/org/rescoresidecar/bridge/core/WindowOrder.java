package org.rescoresidecar.bridge.core;

import java.util.Arrays;

/**
 * Ordering rules shared by both engines, on plain arrays so they are unit-testable without Lucene:
 * doc-value reads in doc-id order, and a rescored window sorted by its new score (descending, ties
 * by doc id like Lucene's rescorers).
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
}
