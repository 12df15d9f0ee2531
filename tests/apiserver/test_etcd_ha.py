"""Two API servers on one real etcd: the HA control plane's storage path."""
import json
import os
import sys
import time

import pytest

from support.cluster import Cluster, free_port

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "storage"))
from etcd_server import EtcdServer, require_etcd  # noqa: E402

pytestmark = pytest.mark.etcd


def wait_for(fn, deadline=15.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.1)
    return False


def test_two_api_servers_share_one_etcd(tmp_path):
    require_etcd()
    os.makedirs(tmp_path / "etcd")
    with EtcdServer(base_dir=str(tmp_path / "etcd")) as etcd:
        # Both servers use the same CA, as an HA control plane does.
        a = Cluster(str(tmp_path / "a"), free_port())
        os.makedirs(a.data_dir)
        endpoint = ["--datastore-endpoint", f"etcd://{etcd.endpoint}"]
        a.start(endpoint)
        b_dir = tmp_path / "b"
        os.makedirs(b_dir / "server")
        os.system(f"cp -r {a.data_dir}/server/tls {b_dir}/server/")
        b = Cluster(str(b_dir), free_port())
        b.start(endpoint)
        try:
            a.kubectl("create", "configmap", "shared", "--from-literal=k=v")
            # B's watch cache follows etcd: the object shows up there with the same RV.
            assert wait_for(lambda: b.kubectl("get", "cm", "shared", check=False)
                            .returncode == 0)
            ra = json.loads(a.kubectl("get", "cm", "shared", "-o", "json").stdout)
            rb = json.loads(b.kubectl("get", "cm", "shared", "-o", "json").stdout)
            assert ra["metadata"]["resourceVersion"] == rb["metadata"]["resourceVersion"]
            # Compare-and-swap spans servers: a stale write through B conflicts.
            a.kubectl("label", "cm", "shared", "x=1")
            stale = dict(rb, data={"k": "stale"})
            r = b.kubectl("replace", "-f", "-", input=json.dumps(stale), check=False)
            assert "the object has been modified" in r.stderr
            # Allocations span servers: one ClusterIP is never handed out twice.
            a.kubectl("create", "service", "clusterip", "s1", "--clusterip=10.43.200.1",
                      "--tcp=80")
            r = b.kubectl("create", "service", "clusterip", "s2",
                          "--clusterip=10.43.200.1", "--tcp=80", check=False)
            assert "provided IP is already allocated" in r.stderr
        finally:
            b.stop()
            a.stop()
