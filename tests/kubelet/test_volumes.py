"""Pod volumes on disk: data volumes written atomically, mounts as CRI gets them."""
import base64
import os
from pathlib import Path

import pytest

from pyk8s.client.clock import FakeClock
from pyk8s.client.fake import FakeAPI, FakeTransport
from pyk8s.client.rest import Client
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.kubelet.volumes import VolumeError, VolumeManager, write_atomic

from .helpers import container, pod


@pytest.fixture
def env(tmp_path):
    clock = FakeClock()
    api = FakeAPI(clock=clock)
    tokens = []

    def token_request(req):
        if req.subresource != "token":
            return None
        tokens.append(req.body["spec"])
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": dict(req.body["spec"], expirationSeconds=3600),
                "status": {"token": f"token-{len(tokens)}"}}

    api.prepend_reactor("create", "serviceaccounts", reactor=token_request)
    client = Client(transport=FakeTransport(api), clock=clock)
    settings = KubeletSettings(node_name="node-a", data_dir=tmp_path)
    return VolumeManager(settings, client, clock=clock), api, clock, tokens


def test_write_atomic_swaps_the_data_link_and_drops_stale_files(tmp_path):
    clock = FakeClock()
    target = tmp_path / "vol"
    assert write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)}, clock.now())
    assert (target / "a").read_text() == "1" and (target / "dir" / "b").read_text() == "2"
    assert os.readlink(target / "a") == "..data/a"
    first = os.readlink(target / "..data")
    assert not write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)}, clock.now())
    clock.advance(1)
    assert write_atomic(target, {"a": (b"changed", 0o644)}, clock.now())
    assert os.readlink(target / "..data") != first
    assert (target / "a").read_text() == "changed"
    assert not (target / "dir").exists() and not (target / first).exists()
    assert (target / "..data" / "a").stat().st_mode & 0o777 == 0o644


async def test_config_map_secret_downward_api_and_token_volumes(env):
    manager, api, clock, tokens = env
    api.add({"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "cfg", "namespace": "default"},
             "data": {"app.conf": "x=1", "other": "y"}})
    api.add({"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "sec", "namespace": "default"},
             "data": {"password": base64.b64encode(b"hunter2").decode()}})
    p = pod(volumes=[
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "app.conf",
                                                                  "path": "conf/app.conf"}]}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "api", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "scratch", "emptyDir": {}},
    ], containers=[container(volumeMounts=[
        {"name": "cfg", "mountPath": "/etc/app"},
        {"name": "sec", "mountPath": "/secret", "readOnly": True},
        {"name": "api", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
         "readOnly": True},
        {"name": "scratch", "mountPath": "/tmp/work", "subPath": "a/b"}])])
    uid = p["metadata"]["uid"]
    await manager.setup(p)
    base = manager.settings.pods_dir / uid / "volumes"
    assert (base / "kubernetes.io~configmap/cfg/conf/app.conf").read_text() == "x=1"
    assert not (base / "kubernetes.io~configmap/cfg/other").exists()
    secret = base / "kubernetes.io~secret/sec/password"
    assert secret.read_text() == "hunter2" and secret.stat().st_mode & 0o777 == 0o400
    assert (base / "kubernetes.io~downward-api/info/name").read_text() == "web"
    projected = base / "kubernetes.io~projected/api"
    assert (projected / "token").read_text() == "token-1"
    assert (projected / "namespace").read_text() == "default"
    assert tokens[0]["boundObjectRef"] == {"kind": "Pod", "apiVersion": "v1", "name": "web",
                                           "uid": uid}
    mounts = await manager.mounts(p, p["spec"]["containers"][0])
    assert mounts[0] == {"container_path": "/etc/app",
                         "host_path": str(base / "kubernetes.io~configmap/cfg"),
                         "readonly": False}
    assert mounts[1]["readonly"] is True
    assert mounts[3]["host_path"] == str(base / "kubernetes.io~empty-dir/scratch/a/b")
    assert Path(mounts[3]["host_path"]).is_dir()

    # the token is renewed at 80% of its lifetime, not before
    await manager.setup(p)
    assert len(tokens) == 1
    assert manager.next_token_refresh(uid) == pytest.approx(2880)
    clock.advance(2881)
    await manager.setup(p)
    assert (projected / "token").read_text() == "token-2"


async def test_missing_config_map_fails_unless_optional(env):
    manager, *_ = env
    with pytest.raises(VolumeError, match='configmap "nope" not found'):
        await manager.setup(pod(volumes=[{"name": "c", "configMap": {"name": "nope"}}]))
    await manager.setup(pod(volumes=[{"name": "c", "configMap": {"name": "nope",
                                                                  "optional": True}}]))


async def test_unsupported_volumes_are_refused_by_name(env):
    manager, *_ = env
    with pytest.raises(VolumeError, match="nfs volumes are not supported"):
        await manager.setup(pod(volumes=[{"name": "data", "nfs": {
            "server": "192.0.2.1", "path": "/x"}}]))
