package org.rescoresidecar.bridge.opensearch;

import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.ReaderUtil;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TopDocs;
import org.opensearch.index.fielddata.IndexFieldData;
import org.opensearch.index.fielddata.IndexNumericFieldData;
import org.opensearch.index.fielddata.SortedBinaryDocValues;
import org.opensearch.index.fielddata.SortedNumericDoubleValues;
import org.opensearch.search.rescore.RescoreContext;
import org.opensearch.search.rescore.Rescorer;
import org.rescoresidecar.bridge.core.HitInput;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.SidecarService;
import org.rescoresidecar.bridge.core.WindowOrder;

import java.io.IOException;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Per shard: the top {@code window_size} hits, their ids and feature fields read from doc values in
 * doc-id order, one call to the sidecar, the new scores written back and the window re-sorted. On
 * any failure the shard's hits are returned untouched (the baseline order).
 */
final class SidecarRescorer implements Rescorer {
    static final SidecarRescorer INSTANCE = new SidecarRescorer();

    static final class Context extends RescoreContext {
        final RescoreParams params;
        final IndexFieldData<?> ids;
        final List<IndexNumericFieldData> fields;
        final SidecarService service;

        Context(int windowSize, RescoreParams params, IndexFieldData<?> ids, List<IndexNumericFieldData> fields, SidecarService service) {
            super(windowSize, INSTANCE);
            this.params = params;
            this.ids = ids;
            this.fields = fields;
            this.service = service;
        }
    }

    @Override
    public TopDocs rescore(TopDocs topDocs, IndexSearcher searcher, RescoreContext rescoreContext) throws IOException {
        Context ctx = (Context) rescoreContext;
        ScoreDoc[] all = topDocs.scoreDocs;
        int n = Math.min(all.length, ctx.getWindowSize());
        if (n == 0) {
            return topDocs;
        }
        ScoreDoc[] window = Arrays.copyOf(all, n);
        // the engine carries these doc ids to the fetch phase, where explain tells window from tail
        Set<Integer> windowDocs = new HashSet<>();
        for (ScoreDoc d : window) {
            windowDocs.add(d.doc);
        }
        rescoreContext.setRescoredDocs(windowDocs);
        HitInput[] hits = readHits(searcher, window, ctx);
        SidecarService.Outcome outcome = ctx.service.rescore(ctx.params, Arrays.asList(hits));
        if (!outcome.isRescored()) {
            return topDocs; // fail-safe: the shard keeps its first-pass order and scores
        }
        double[] model = outcome.modelScores();
        float[] scores = new float[n];
        int[] docs = new int[n];
        for (int i = 0; i < n; i++) {
            scores[i] = ctx.params.combine(window[i].score, model[i]);
            docs[i] = window[i].doc;
        }
        int[] order = WindowOrder.rescoredOrder(scores, docs);
        ScoreDoc[] out = new ScoreDoc[all.length];
        for (int i = 0; i < n; i++) {
            ScoreDoc src = window[order[i]];
            out[i] = new ScoreDoc(src.doc, scores[order[i]], src.shardIndex);
        }
        if (all.length > n) {
            float[] tail = new float[all.length - n];
            for (int i = n; i < all.length; i++) {
                tail[i - n] = all[i].score;
            }
            float[] below = WindowOrder.belowWindow(out[n - 1].score, tail);
            for (int i = n; i < all.length; i++) {
                out[i] = new ScoreDoc(all[i].doc, below[i - n], all[i].shardIndex);
            }
        }
        return new TopDocs(topDocs.totalHits, out);
    }

    /** Reads id and feature doc values for the window, visiting documents in doc-id order. */
    static HitInput[] readHits(IndexSearcher searcher, ScoreDoc[] window, Context ctx) throws IOException {
        int[] docs = new int[window.length];
        for (int i = 0; i < window.length; i++) {
            docs[i] = window[i].doc;
        }
        List<LeafReaderContext> leaves = searcher.getIndexReader().leaves();
        HitInput[] out = new HitInput[window.length];
        LeafReaderContext leaf = null;
        SortedBinaryDocValues ids = null;
        SortedNumericDoubleValues[] values = new SortedNumericDoubleValues[ctx.fields.size()];
        for (int k : WindowOrder.docIdOrder(docs)) {
            int doc = docs[k];
            if (leaf == null || doc >= leaf.docBase + leaf.reader().maxDoc()) {
                leaf = leaves.get(ReaderUtil.subIndex(doc, leaves));
                ids = ctx.ids.load(leaf).getBytesValues();
                for (int f = 0; f < values.length; f++) {
                    values[f] = ctx.fields.get(f).load(leaf).getDoubleValues();
                }
            }
            int local = doc - leaf.docBase;
            String id = ids.advanceExact(local) ? ids.nextValue().utf8ToString() : "";
            double[] features = new double[values.length];
            for (int f = 0; f < values.length; f++) {
                // multi-valued fields: the first (smallest) value; a document without one: missing
                features[f] = values[f].advanceExact(local) ? values[f].nextValue() : Double.NaN;
            }
            out[k] = new HitInput(id, window[k].score, features);
        }
        return out;
    }

    @Override
    public Explanation explain(int topLevelDocId, IndexSearcher searcher, RescoreContext rescoreContext, Explanation sourceExplanation)
        throws IOException {
        Context ctx = (Context) rescoreContext;
        Set<Integer> rescored = rescoreContext.getRescoredDocs();
        if (rescored != null && !rescored.contains(topLevelDocId)) {
            return Explanation.match(sourceExplanation.getValue(), "sidecar rescore: outside the rescore window, first-pass score kept",
                sourceExplanation);
        }
        float first = sourceExplanation.getValue().floatValue();
        HitInput hit = readHits(searcher, new ScoreDoc[] {new ScoreDoc(topLevelDocId, first)}, ctx)[0];
        // the sidecar scores each hit from its own features, so a one-hit call reproduces the window's score
        SidecarService.Outcome outcome = ctx.service.rescore(ctx.params, List.of(hit));
        Explanation firstPass = Explanation.match(first, "first-pass score", sourceExplanation);
        if (!outcome.isRescored()) {
            return Explanation.match(first, "sidecar rescore: baseline kept (" + outcome.reason().label() + ": " + outcome.detail() + ")",
                firstPass);
        }
        double model = outcome.modelScores()[0];
        float combined = ctx.params.combine(first, model);
        String how = ctx.params.scoreMode() == org.rescoresidecar.bridge.core.ScoreMode.REPLACE
            ? "score_mode replace"
            : String.format(Locale.ROOT, "score_mode weighted: %s * first-pass + %s * model", ctx.params.queryWeight(), ctx.params.modelWeight());
        return Explanation.match(combined, String.format(Locale.ROOT, "sidecar rescore: model %s version %s variant %s, %s, item id [%s]",
                outcome.result().model(), outcome.result().version(), outcome.result().variant(), how, hit.id()),
            Explanation.match((float) model, "model score"), firstPass);
    }
}
