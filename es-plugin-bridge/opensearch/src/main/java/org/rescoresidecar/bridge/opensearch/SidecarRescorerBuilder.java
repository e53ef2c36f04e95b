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
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.rescoresidecar.bridge.core.RescoreParams;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;

/**
 * The {@code "sidecar": {...}} rescorer: DSL and wire go through {@link RescoreParams} (the shared
 * core), so this class only adapts OpenSearch's parser, streams and field data.
 */
public class SidecarRescorerBuilder extends RescorerBuilder<SidecarRescorerBuilder> {
    private final RescoreParams params;
    private final NodeBridge bridge;

    public SidecarRescorerBuilder(RescoreParams params, NodeBridge bridge) {
        this.params = Objects.requireNonNull(params);
        this.bridge = bridge;
    }

    public SidecarRescorerBuilder(StreamInput in, NodeBridge bridge) throws IOException {
        super(in);
        this.params = RescoreParams.fromJson(in.readString());
        this.bridge = bridge;
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeString(params.toJson());
    }

    public static SidecarRescorerBuilder fromXContent(XContentParser parser, NodeBridge bridge) throws IOException {
        Map<String, Object> dsl = parser.mapOrdered();
        return new SidecarRescorerBuilder(RescoreParams.fromDsl(dsl), bridge);
    }

    @Override
    protected void doXContent(XContentBuilder builder, Params xParams) throws IOException {
        builder.startObject(RescoreParams.NAME);
        for (Map.Entry<String, Object> e : params.toDsl().entrySet()) {
            builder.field(e.getKey(), e.getValue());
        }
        builder.endObject();
    }

    @Override
    public String getWriteableName() {
        return RescoreParams.NAME;
    }

    /**
     * On the coordinating node (no shard context), a search without {@code request_id} gets one, so
     * that every shard sends the same: the search's {@code X-Opaque-Id} if given, else a new UUID.
     */
    @Override
    public RescorerBuilder<SidecarRescorerBuilder> rewrite(QueryRewriteContext ctx) {
        if (params.requestId() != null || ctx.convertToShardContext() != null) {
            return this;
        }
        SidecarRescorerBuilder tagged = new SidecarRescorerBuilder(params.withRequestId(requestIdFor(bridge)), bridge);
        if (windowSize != null) {
            tagged.windowSize(windowSize);
        }
        return tagged;
    }

    static String requestIdFor(NodeBridge bridge) {
        String opaque = bridge == null ? null : bridge.opaqueId.get();
        if (opaque != null && !opaque.isEmpty() && opaque.getBytes(java.nio.charset.StandardCharsets.UTF_8).length
            <= RescoreParams.MAX_REQUEST_ID_BYTES) {
            return opaque;
        }
        return UUID.randomUUID().toString();
    }

    @Override
    protected RescoreContext innerBuildContext(int windowSize, QueryShardContext context) throws IOException {
        IndexFieldData<?> ids = fieldData(context, params.idField(), false);
        List<IndexNumericFieldData> numeric = new ArrayList<>();
        for (String field : params.fieldNames()) {
            numeric.add((IndexNumericFieldData) fieldData(context, field, true));
        }
        RescoreParams forShard = params;
        if (forShard.requestId() == null) {
            String opaque = bridge.opaqueId.get(); // the coordinator's rewrite did not run: the header is shared by all shards
            if (opaque != null && !opaque.isEmpty()) {
                forShard = forShard.withRequestId(requestIdFor(bridge));
            }
        }
        return new SidecarRescorer.Context(windowSize, forShard, ids, numeric, bridge.service);
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
