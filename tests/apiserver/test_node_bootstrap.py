"""A joining node's kubelet: `pyk8s token create`, then TLS bootstrap to its own identity."""
import asyncio
import json
import os
import subprocess
import sys
import uuid

from pyk8s.kubelet.bootstrap import bootstrap


def test_kubelet_bootstraps_its_identity_from_a_join_token(cluster, tmp_path):
    token = subprocess.run(
        [sys.executable, "-m", "pyk8s.cli.main", "token", "create", "--kubeconfig",
         cluster.kubeconfig], capture_output=True, text=True, check=True).stdout.strip()
    assert len(token) == 23 and token[6] == "."
    node = "joiner-" + uuid.uuid4().hex[:6]
    ca = os.path.join(cluster.data_dir, "server", "tls", "server-ca.crt")
    path = str(tmp_path / "kubelet.kubeconfig")
    asyncio.run(bootstrap(server=cluster.url, ca_file=ca, token=token, node=node,
                          kubeconfig=path, timeout=60))
    env = dict(os.environ, KUBECONFIG=path, HOME=str(tmp_path))
    who = json.loads(subprocess.run(["kubectl", "auth", "whoami", "-o", "json"], env=env,
                                    capture_output=True, text=True, check=True).stdout)
    assert who["status"]["userInfo"]["username"] == f"system:node:{node}"
    assert "system:nodes" in who["status"]["userInfo"]["groups"]
    # The kubeconfig is reused while its certificate is valid: no second CSR.
    before = os.stat(path).st_mtime_ns
    asyncio.run(bootstrap(server=cluster.url, ca_file=ca, token="invalid.token0000000000",
                          node=node, kubeconfig=path, timeout=5))
    assert os.stat(path).st_mtime_ns == before
