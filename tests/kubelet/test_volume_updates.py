"""Data volumes follow their sources while the pod runs (upstream's AtomicWriter swap)."""
import os

from pyk8s.client import resources

from .fakenode import make_node
from .helpers import container, pod


async def test_a_config_map_change_reaches_the_volume_at_the_next_pod_sync(tmp_path):
    node = await make_node(tmp_path, sync_frequency=5.0)
    try:
        await node.client.create(resources.CONFIGMAPS, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default"},
            "data": {"key": "one", "extra": "x"}}, namespace="default")
        p = await node.create(pod(volumes=[
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}],
            containers=[container(volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}])]))
        await node.settle()
        base = node.kubelet.settings.pods_dir / p["metadata"]["uid"] / "volumes"
        cfg = base / "kubernetes.io~configmap" / "cfg"
        assert (cfg / "key").read_text() == "one" and (cfg / "extra").read_text() == "x"
        first = os.readlink(cfg / "..data")
        [running] = node.containers()

        await node.client.patch(resources.CONFIGMAPS, "cfg", namespace="default",
                                body={"data": {"key": "two", "extra": None}},
                                patch_type="merge")
        await node.advance(5)
        assert (cfg / "key").read_text() == "two"
        assert not (cfg / "extra").exists() and not os.path.lexists(cfg / "extra")
        assert os.readlink(cfg / "..data") != first and not (cfg / first).exists()
        assert os.readlink(cfg / "key") == "..data/key"
        assert [c.id for c in node.containers()] == [running.id]  # no restart

        # a label change is a pod update: the downward API volume follows at once
        await node.client.patch(resources.PODS, "web", namespace="default",
                                body={"metadata": {"labels": {"tier": "front"}}},
                                patch_type="merge")
        await node.settle()
        assert (base / "kubernetes.io~downward-api" / "info" / "labels").read_text() == \
            'tier="front"'
    finally:
        await node.kubelet.stop()
