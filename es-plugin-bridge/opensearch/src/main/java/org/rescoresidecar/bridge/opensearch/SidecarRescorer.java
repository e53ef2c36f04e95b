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
import org.rescoresidecar.bridge.core.ExplainText;
import org.rescoresidecar.bridge.core.FallbackMemo;
import org.rescoresidecar.bridge.core.HitInput;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.ShardRescore;
import org.rescoresidecar.bridge.core.SidecarService;
import org.rescoresidecar.bridge.core.WindowOrder;

import java.io.IOException;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Per shard: reads the window's ids and feature fields from doc values (in doc-id order) and hands
 * the rest to the core ({@link SidecarService#rescoreShard}, {@link ShardRescore}, {@link ExplainText}).
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
        Window w = readWindow(searcher, window, ctx);
        float[] firstPass = new float[all.length];
        int[] docs = new int[all.length];
        for (int i = 0; i < all.length; i++) {
            firstPass[i] = all[i].score;
            docs[i] = all[i].doc;
        }
        ShardRescore r = ctx.service.rescoreShard(ctx.params, firstPass, docs, n, Arrays.asList(w.hits), w.segments, w.segmentDocs);
        ScoreDoc[] out = new ScoreDoc[all.length];
        for (int i = 0; i < all.length; i++) {
            ScoreDoc src = all[r.docIndex(i)];
            out[i] = new ScoreDoc(src.doc, r.score(i), src.shardIndex);
        }
        return new TopDocs(topDocs.totalHits, out);
    }

    /** The window's hits as sent, with each hit's segment identity and segment-local doc (for explain's memo). */
    static final class Window {
        final HitInput[] hits;
        final Object[] segments;
        final int[] segmentDocs;

        Window(int n) {
            hits = new HitInput[n];
            segments = new Object[n];
            segmentDocs = new int[n];
        }
    }

    /** Reads id and feature doc values for the window, visiting documents in doc-id order. */
    static Window readWindow(IndexSearcher searcher, ScoreDoc[] window, Context ctx) throws IOException {
        int[] docs = new int[window.length];
        for (int i = 0; i < window.length; i++) {
            docs[i] = window[i].doc;
        }
        List<LeafReaderContext> leaves = searcher.getIndexReader().leaves();
        Window out = new Window(window.length);
        LeafReaderContext leaf = null;
        Object segment = null;
        SortedBinaryDocValues ids = null;
        SortedNumericDoubleValues[] values = new SortedNumericDoubleValues[ctx.fields.size()];
        int missing = 0;
        int multi = 0;
        for (int k : WindowOrder.docIdOrder(docs)) {
            int doc = docs[k];
            if (leaf == null || doc >= leaf.docBase + leaf.reader().maxDoc()) {
                leaf = leaves.get(ReaderUtil.subIndex(doc, leaves));
                segment = segmentKey(leaf);
                ids = ctx.ids.load(leaf).getBytesValues();
                for (int f = 0; f < values.length; f++) {
                    values[f] = ctx.fields.get(f).load(leaf).getDoubleValues();
                }
            }
            int local = doc - leaf.docBase;
            String id = "";
            if (ids.advanceExact(local)) {
                // several values: the first in doc-values order (the smallest), counted
                if (ids.docValueCount() > 1) {
                    multi++;
                }
                id = ids.nextValue().utf8ToString();
            } else {
                missing++; // sent as id "": an unknown item for the sidecar
            }
            double[] features = new double[values.length];
            for (int f = 0; f < values.length; f++) {
                // multi-valued fields: the first (smallest) value; a document without one: missing
                features[f] = values[f].advanceExact(local) ? values[f].nextValue() : Double.NaN;
            }
            out.hits[k] = new HitInput(id, window[k].score, features);
            out.segments[k] = segment;
            out.segmentDocs[k] = local;
        }
        ctx.service.counters().onIds(missing, multi);
        return out;
    }

    static Object segmentKey(LeafReaderContext leaf) {
        var helper = leaf.reader().getCoreCacheHelper();
        return helper == null ? null : helper.getKey();
    }

    @Override
    public Explanation explain(int topLevelDocId, IndexSearcher searcher, RescoreContext rescoreContext, Explanation sourceExplanation)
        throws IOException {
        Context ctx = (Context) rescoreContext;
        float first = sourceExplanation.getValue().floatValue();
        Set<Integer> rescored = rescoreContext.getRescoredDocs();
        if (rescored != null && !rescored.contains(topLevelDocId)) {
            ExplainText.Line tail = ExplainText.outsideWindow(first);
            return Explanation.match(tail.value(), tail.text(), sourceExplanation);
        }
        Window w = readWindow(searcher, new ScoreDoc[] {new ScoreDoc(topLevelDocId, first)}, ctx);
        Explanation firstPass = Explanation.match(first, "first-pass score", sourceExplanation);
        FallbackMemo.Entry memo = ctx.service.recallFallback(ctx.params.requestId(), w.segments[0], w.segmentDocs[0]);
        if (memo != null) {
            ExplainText.Line l = ExplainText.fellBack(memo);
            return Explanation.match(l.value(), l.text(), firstPass);
        }
        // the sidecar scores each hit from its own features, so a one-hit call reproduces the window's score
        SidecarService.Outcome outcome = ctx.service.explainCall(ctx.params, List.of(w.hits[0]));
        if (!outcome.isRescored()) {
            ExplainText.Line l = ExplainText.explainCallFailed(outcome, first);
            return Explanation.match(l.value(), l.text(), firstPass);
        }
        double model = outcome.modelScores()[0];
        ExplainText.Line l = ExplainText.rescored(ctx.params, outcome, first, model, w.hits[0].id());
        return Explanation.match(l.value(), l.text(), Explanation.match((float) model, "model score"), firstPass);
    }
}
