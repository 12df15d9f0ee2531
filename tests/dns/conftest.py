"""DNS tests: loopback only, plus root tests inside network namespaces they create.

The lab (``tests/proxy/netlab.py``) and the API server helper
(``tests/proxy/apiserver.py``) are shared with the proxy tests; they are loaded by
path because the two test directories are separate import roots.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import sys

import pytest

PROXY_TESTS = pathlib.Path(__file__).resolve().parent.parent / "proxy"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PROXY_TESTS / f"{name.split('_', 1)[1]}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


netlab = _load("dnstests_netlab")
apiserver = _load("dnstests_apiserver")


@pytest.fixture(autouse=True)
def _needs_root(request):
    if request.node.get_closest_marker("root") is None:
        return
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and nftables tables in them")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs the {tool} command")


@pytest.fixture(scope="session")
def api_server(tmp_path_factory):
    if not os.path.exists(apiserver.KUBECTL):
        pytest.skip("kubectl is not installed")
    server = apiserver.ApiServer(str(tmp_path_factory.mktemp("pyk8s-dns"))).start()
    yield server
    server.stop()


@pytest.fixture
async def api_client(api_server):
    from pyk8s.client import Client, load_kubeconfig
    client = Client(load_kubeconfig(api_server.kubeconfig))
    yield client
    await client.close()


@pytest.fixture
async def lab():
    lab = netlab.Lab()
    try:
        lab.setup()
        yield lab
    finally:
        lab.close()
