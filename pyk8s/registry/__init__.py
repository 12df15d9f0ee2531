"""The registry: resource catalogue, generic store, per-kind strategies."""
