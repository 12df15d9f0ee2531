"""Storage backends behind one contract (interface.Store); only the API server uses them."""
from .interface import (Compacted, Conflict, Event, EventType, FutureRevision, KeyExists,
                        KeyNotFound, KeyValue, ListResult, StorageError, Store)

__all__ = ["Compacted", "Conflict", "Event", "EventType", "FutureRevision", "KeyExists",
           "KeyNotFound", "KeyValue", "ListResult", "StorageError", "Store", "open_store"]


def open_store(endpoint: str, *, data_dir: str = "",
               compaction_interval: float = 300.0) -> Store:
    """A store for a `--datastore-endpoint` value.

    ``""`` or ``sqlite://`` → ``<data_dir>/server/db/state.db``; ``sqlite:///path`` →
    that file; ``etcd://h1:p1,h2:p2`` (or ``http://``) → an etcd cluster.
    ``compaction_interval`` (``--etcd-compaction-interval``, seconds; 0 disables)
    drives periodic compaction on either backend, keeping one interval of history.
    """
    if endpoint.startswith(("etcd://", "http://", "https://")):
        from .etcd import EtcdStore
        hosts = endpoint.split("://", 1)[1].rstrip("/")
        return EtcdStore([h for h in hosts.split(",") if h],
                         compaction_interval=compaction_interval)
    from .sqlite import SqliteStore
    path = endpoint[len("sqlite://"):] if endpoint.startswith("sqlite://") else endpoint
    if not path:
        import os
        path = os.path.join(data_dir, "server", "db", "state.db")
    return SqliteStore(path, compact_interval=compaction_interval)
