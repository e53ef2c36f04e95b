package org.rescoresidecar.bridge.elasticsearch;

import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;
import org.rescoresidecar.bridge.core.SidecarService;

import java.util.List;

/** {@code GET /_sidecar/stats}: this node's bridge counters (calls, rescored, fallbacks by reason, breaker). */
public class RestSidecarStatsAction extends BaseRestHandler {
    private final SidecarService service;

    RestSidecarStatsAction(SidecarService service) {
        this.service = service;
    }

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
            b.map(service.stats());
            channel.sendResponse(new RestResponse(RestStatus.OK, b));
        };
    }
}
