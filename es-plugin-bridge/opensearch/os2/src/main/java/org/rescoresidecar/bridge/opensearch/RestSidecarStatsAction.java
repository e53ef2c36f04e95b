package org.rescoresidecar.bridge.opensearch;

import org.opensearch.client.node.NodeClient;
import org.opensearch.rest.BaseRestHandler;
import org.opensearch.rest.RestRequest;
import org.opensearch.rest.BytesRestResponse;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.core.xcontent.XContentBuilder;
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
            channel.sendResponse(new BytesRestResponse(RestStatus.OK, b));
        };
    }
}
