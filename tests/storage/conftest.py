"""The `store` fixture: each contract test runs once per backend."""
import os

import pytest

from etcd_server import etcd_endpoint, etcd_server  # noqa: F401  (session etcd fixtures)
from pyk8s.storage.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
async def store(request, tmp_path):
    if request.param == "sqlite":
        s = SqliteStore(os.path.join(tmp_path, "state.db"), compact_interval=0)
    else:
        etcd = request.getfixturevalue("etcd_endpoint")
        from pyk8s.storage.etcd import EtcdStore
        s = EtcdStore([etcd], prefix=f"/{request.node.name}")
    await s.start()
    try:
        yield s
    finally:
        await s.close()
