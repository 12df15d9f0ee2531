"""What a joined node's credentials may do: `pyk8s agent` runs kube-proxy and cluster
DNS as `system:node:<name>`, so that identity must read Services and EndpointSlices
(and nothing more than a node may). Runs `pyk8s server --disable-agent` and the
agent's TLS bootstrap; no containerd, no root."""
import asyncio
import contextlib
import os
import subprocess
import sys

import pytest

from pyk8s.cli.noderecord import NodeRecord, read_record, write_record
from pyk8s.kubelet.bootstrap import bootstrap
from support.cluster import KUBECTL, free_port, stop_process
from support.waiting import wait_for


@contextlib.contextmanager
def control_plane(data_dir, *flags: str):
    """`pyk8s server --disable-agent` on ``data_dir``, ready, stopped at the end."""
    data_dir.mkdir(exist_ok=True)
    with open(data_dir / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "server",
                                 "--data-dir", str(data_dir), "--https-port",
                                 str(free_port()), "--disable-agent", *flags],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "cluster ready" in (data_dir / "server.log").read_text(
            errors="replace") or proc.poll() is not None, "the server", 60)
        assert proc.poll() is None, (data_dir / "server.log").read_text()
        yield proc
    finally:
        stop_process(proc, 30)


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("server")

    def kubectl(*args, kubeconfig=str(data_dir / "kubeconfig.yaml"), check=True):
        env = dict(os.environ, KUBECONFIG=kubeconfig, HOME=str(data_dir))
        r = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env,
                           timeout=60)
        assert not check or r.returncode == 0, r.stderr
        return r
    with control_plane(data_dir):
        token = subprocess.run([sys.executable, "-m", "pyk8s.cli.main", "token", "create",
                                "--data-dir", str(data_dir)], capture_output=True, text=True,
                               timeout=60)
        assert token.returncode == 0, token.stderr
        url = kubectl("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
        node_config = asyncio.run(bootstrap(
            server=url, ca_file=str(data_dir / "server" / "tls" / "server-ca.crt"),
            token=token.stdout.strip(), node="worker-1",
            kubeconfig=str(data_dir / "worker" / "kubelet.kubeconfig"), timeout=60))
        yield kubectl, node_config


def test_the_node_identity_reads_what_kube_proxy_and_dns_watch(joined):
    kubectl, node_config = joined
    assert kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                   kubeconfig=node_config).stdout == "system:node:worker-1"
    kubectl("create", "service", "clusterip", "web", "--tcp=80:80")
    services = kubectl("get", "services", "-A", "-o", "name", kubeconfig=node_config).stdout
    assert "service/web" in services.split()

    def web_slice():
        slices = kubectl("get", "endpointslices.discovery.k8s.io", "-l",
                         "kubernetes.io/service-name=web", "-o", "name",
                         kubeconfig=node_config).stdout
        return slices.startswith("endpointslice.discovery.k8s.io/web-")
    wait_for(web_slice, "the node to see the Service's EndpointSlice", 30)
    for verb, what in (("watch", "services"), ("watch", "endpointslices.discovery.k8s.io"),
                       ("list", "nodes")):
        assert kubectl("auth", "can-i", verb, what, "-A", kubeconfig=node_config,
                       check=False).stdout.strip() == "yes", (verb, what)


def test_the_node_identity_may_not_change_services(joined):
    kubectl, node_config = joined
    r = kubectl("create", "service", "clusterip", "nope", "--tcp=80:80",
                kubeconfig=node_config, check=False)
    assert r.returncode != 0
    assert 'User "system:node:worker-1" cannot create resource "services"' in r.stderr


def test_the_control_plane_registers_kube_dns_without_an_embedded_node(joined):
    kubectl, _ = joined
    ip = kubectl("get", "service", "kube-dns", "-n", "kube-system", "-o",
                 "jsonpath={.spec.clusterIP}").stdout
    assert ip == "10.43.0.10"


def test_reset_reads_what_the_node_set_up(tmp_path):
    assert read_record(str(tmp_path)) == NodeRecord()  # a data dir of an older version
    record = NodeRecord(bridge="pyk8s1", cgroup_root="/kubepods-n2", kube_proxy=False,
                        dns=False)
    write_record(str(tmp_path), record)
    assert read_record(str(tmp_path)) == record


def test_kube_dns_takes_the_tenth_address_of_the_service_range(tmp_path):
    data_dir = tmp_path / "server"
    base = [sys.executable, "-m", "pyk8s.cli.main", "server", "--data-dir", str(data_dir),
            "--https-port", str(free_port()), "--disable-agent",
            "--service-cidr", "10.43.64.0/18"]
    # a DNS address outside the Service range is refused before anything starts
    bad = subprocess.run(base + ["--cluster-dns", "10.44.0.10"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1
    assert "pyk8s: --cluster-dns 10.44.0.10 is not in --service-cidr 10.43.64.0/18" in \
        bad.stderr
    assert not (data_dir / "server" / "tls").exists()
    with control_plane(data_dir, "--service-cidr", "10.43.64.0/18"):
        env = dict(os.environ, KUBECONFIG=str(data_dir / "kubeconfig.yaml"),
                   HOME=str(data_dir))
        out = subprocess.run([KUBECTL, "get", "service", "-A", "-o",
                              "jsonpath={range .items[*]}{.metadata.name}={.spec.clusterIP} "
                              "{end}"], capture_output=True, text=True, env=env, timeout=60)
        assert set(out.stdout.split()) == {"kubernetes=10.43.64.1", "kube-dns=10.43.64.10"}
