package org.rescoresidecar.bridge.elasticsearch;

import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

import java.util.List;

/** {@code GET /_sidecar/stats}: this node's bridge counters (calls, rescored, fallbacks by reason, breaker). */
public class RestSidecarStatsAction extends BaseRestHandler {
    @Override
    public String getName() {
        return "sidecar_stats";
    }

    @Override
    public List<Route> routes() {
        return List.of(new Route(RestRequest.Method.GET, "/_sidecar/stats"));
    }

    @Override
    protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
        return channel -> {
            XContentBuilder b = channel.newBuilder();
            b.map(SidecarPlugin.service().stats());
            channel.sendResponse(new RestResponse(RestStatus.OK, b));
        };
    }
}
