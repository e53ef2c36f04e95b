package org.rescoresidecar.bridge.opensearch;

import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.index.fielddata.IndexFieldData;
import org.opensearch.index.fielddata.IndexNumericFieldData;
import org.opensearch.index.mapper.MappedFieldType;
import org.opensearch.index.query.QueryRewriteContext;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.search.rescore.RescoreContext;
import org.opensearch.search.rescore.RescorerBuilder;
import org.opensearch.core.xcontent.ObjectParser;
import org.opensearch.core.ParseField;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.ScoreMode;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/** The {@code "sidecar": {...}} rescorer: DSL parsing, wire format and the per-shard context. */
public class SidecarRescorerBuilder extends RescorerBuilder<SidecarRescorerBuilder> {
    static final ParseField MODEL = new ParseField("model");
    static final ParseField ID_FIELD = new ParseField("id_field");
    static final ParseField FIELDS = new ParseField("fields");
    static final ParseField QUERY_TEXT = new ParseField("query_text");
    static final ParseField USER_ID = new ParseField("user_id");
    static final ParseField TIMEOUT_MS = new ParseField("timeout_ms");
    static final ParseField SCORE_MODE = new ParseField("score_mode");
    static final ParseField QUERY_WEIGHT = new ParseField("query_weight");
    static final ParseField MODEL_WEIGHT = new ParseField("model_weight");

    private static final class Holder {
        String model;
        String idField;
        List<String> fields;
        String queryText;
        String userId;
        Integer timeoutMs;
        String scoreMode;
        Float queryWeight;
        Float modelWeight;
    }

    private static final ObjectParser<Holder, Void> PARSER = new ObjectParser<>(RescoreParams.NAME, Holder::new);

    static {
        PARSER.declareString((h, v) -> h.model = v, MODEL);
        PARSER.declareString((h, v) -> h.idField = v, ID_FIELD);
        PARSER.declareStringArray((h, v) -> h.fields = v, FIELDS);
        PARSER.declareString((h, v) -> h.queryText = v, QUERY_TEXT);
        PARSER.declareString((h, v) -> h.userId = v, USER_ID);
        PARSER.declareInt((h, v) -> h.timeoutMs = v, TIMEOUT_MS);
        PARSER.declareString((h, v) -> h.scoreMode = v, SCORE_MODE);
        PARSER.declareFloat((h, v) -> h.queryWeight = v, QUERY_WEIGHT);
        PARSER.declareFloat((h, v) -> h.modelWeight = v, MODEL_WEIGHT);
    }

    private final RescoreParams params;

    public SidecarRescorerBuilder(RescoreParams params) {
        this.params = Objects.requireNonNull(params);
    }

    public SidecarRescorerBuilder(StreamInput in) throws IOException {
        super(in);
        String model = in.readOptionalString();
        String idField = in.readString();
        List<String> fields = in.readStringList();
        String queryText = in.readOptionalString();
        String userId = in.readOptionalString();
        Integer timeoutMs = in.readBoolean() ? in.readVInt() : null;
        ScoreMode mode = ScoreMode.fromWireName(in.readString());
        float qw = in.readFloat();
        float mw = in.readFloat();
        this.params = new RescoreParams(model, idField, fields, queryText, userId, timeoutMs, mode,
            mode == ScoreMode.WEIGHTED ? qw : null, mode == ScoreMode.WEIGHTED ? mw : null);
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeOptionalString(params.model());
        out.writeString(params.idField());
        out.writeStringCollection(params.fields());
        out.writeOptionalString(params.queryText());
        out.writeOptionalString(params.userId());
        out.writeBoolean(params.timeoutMs() != null);
        if (params.timeoutMs() != null) {
            out.writeVInt(params.timeoutMs());
        }
        out.writeString(params.scoreMode().wireName());
        out.writeFloat(params.queryWeight());
        out.writeFloat(params.modelWeight());
    }

    public static SidecarRescorerBuilder fromXContent(XContentParser parser) {
        Holder h = PARSER.apply(parser, null);
        ScoreMode mode = h.scoreMode == null ? null : ScoreMode.fromWireName(h.scoreMode);
        return new SidecarRescorerBuilder(new RescoreParams(h.model, h.idField, h.fields, h.queryText, h.userId, h.timeoutMs,
            mode, h.queryWeight, h.modelWeight));
    }

    @Override
    protected void doXContent(XContentBuilder builder, Params xParams) throws IOException {
        builder.startObject(RescoreParams.NAME);
        if (params.model() != null) {
            builder.field(MODEL.getPreferredName(), params.model());
        }
        builder.field(ID_FIELD.getPreferredName(), params.idField());
        builder.field(FIELDS.getPreferredName(), params.fields());
        if (params.queryText() != null) {
            builder.field(QUERY_TEXT.getPreferredName(), params.queryText());
        }
        if (params.userId() != null) {
            builder.field(USER_ID.getPreferredName(), params.userId());
        }
        if (params.timeoutMs() != null) {
            builder.field(TIMEOUT_MS.getPreferredName(), params.timeoutMs());
        }
        builder.field(SCORE_MODE.getPreferredName(), params.scoreMode().wireName());
        if (params.scoreMode() == ScoreMode.WEIGHTED) {
            builder.field(QUERY_WEIGHT.getPreferredName(), params.queryWeight());
            builder.field(MODEL_WEIGHT.getPreferredName(), params.modelWeight());
        }
        builder.endObject();
    }

    @Override
    public String getWriteableName() {
        return RescoreParams.NAME;
    }

    @Override
    public RescorerBuilder<SidecarRescorerBuilder> rewrite(QueryRewriteContext ctx) {
        return this;
    }

    @Override
    protected RescoreContext innerBuildContext(int windowSize, QueryShardContext context) throws IOException {
        IndexFieldData<?> ids = fieldData(context, params.idField(), false);
        List<IndexNumericFieldData> numeric = new ArrayList<>();
        for (String field : params.fields()) {
            numeric.add((IndexNumericFieldData) fieldData(context, field, true));
        }
        return new SidecarRescorer.Context(windowSize, params, ids, numeric, SidecarPlugin.service());
    }

    private static IndexFieldData<?> fieldData(QueryShardContext context, String field, boolean numeric) {
        if (context.getMapperService().fieldType(field) == null) {
            throw new IllegalArgumentException("[sidecar] field [" + field + "] is not mapped in index ["
                + context.getFullyQualifiedIndex().getName() + "]");
        }
        MappedFieldType type = context.getFieldType(field);
        if (!type.hasDocValues()) {
            throw new IllegalArgumentException("[sidecar] field [" + field + "] (type [" + type.typeName()
                + "]) has no doc values; the rescorer reads ids and features from doc values");
        }
        IndexFieldData<?> data = context.getForField(type);
        if (numeric && !(data instanceof IndexNumericFieldData)) {
            throw new IllegalArgumentException("[sidecar] field [" + field + "] is of type [" + type.typeName()
                + "]; fields sent to the sidecar as features must be numeric");
        }
        return data;
    }

    public RescoreParams params() {
        return params;
    }

    @Override
    public boolean equals(Object obj) {
        return super.equals(obj) && params.equals(((SidecarRescorerBuilder) obj).params);
    }

    @Override
    public int hashCode() {
        return Objects.hash(super.hashCode(), params);
    }
}
