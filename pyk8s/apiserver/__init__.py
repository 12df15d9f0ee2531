"""The API server: HTTP, discovery, OpenAPI, watch cache, tables."""
