"""treadle serve: the HTTP API, the gRPC sidecar and the dashboard."""
