"""Proxy tests: root-only tests skip with a reason; the lab lives in namespaces we own."""
from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(autouse=True)
def _needs_root(request):
    if request.node.get_closest_marker("root") is None:
        return
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and nftables tables in them")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs the {tool} command")


@pytest.fixture
async def lab():
    from .netlab import Lab
    lab = Lab()
    try:
        lab.setup()
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def api_server(tmp_path_factory):
    from .apiserver import KUBECTL, ApiServer
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    server = ApiServer(str(tmp_path_factory.mktemp("pyk8s-proxy"))).start()
    yield server
    server.stop()


@pytest.fixture
async def api_client(api_server):
    from pyk8s.client import Client, load_kubeconfig
    client = Client(load_kubeconfig(api_server.kubeconfig))
    yield client
    await client.close()
