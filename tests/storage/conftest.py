"""The `store` fixture: each contract test runs once per backend.

``make_store`` opens more stores of the same backend (with options such as a
compaction interval); ``store`` is one with the defaults and no periodic compaction.
"""
import os
import uuid

import pytest

from etcd_server import etcd_endpoint, etcd_server  # noqa: F401  (session etcd fixtures)
from pyk8s.storage.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
async def make_store(request, tmp_path):
    """``await make_store(compaction_interval=0.0)``: a started store, closed after."""
    stores = []
    # One compare-and-swap key per test, so state left by earlier tests on the shared
    # etcd never decides which tick of this one compacts.
    rev_key = f"compact_rev_key/{uuid.uuid4().hex}"

    async def make(*, compaction_interval: float = 0.0):
        if request.param == "sqlite":
            s = SqliteStore(os.path.join(tmp_path, "state.db"),
                            compact_interval=compaction_interval)
        else:
            etcd = request.getfixturevalue("etcd_endpoint")
            from pyk8s.storage.etcd import EtcdStore
            s = EtcdStore([etcd], prefix=f"/{request.node.name}",
                          compaction_interval=compaction_interval, compact_rev_key=rev_key)
        await s.start()
        stores.append(s)
        return s

    try:
        yield make
    finally:
        for s in stores:
            await s.close()


@pytest.fixture
async def store(make_store):
    return await make_store()
