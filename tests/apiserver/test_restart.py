"""Restarting on the same data dir keeps every object and resourceVersion."""
import json

from support.cluster import Cluster, free_port


def test_restart_keeps_objects_and_versions(tmp_path):
    c = Cluster(str(tmp_path), free_port())
    c.start()
    try:
        c.kubectl("create", "configmap", "keep", "--from-literal=a=1")
        c.kubectl("create", "service", "clusterip", "keep", "--tcp=80")
        before = json.loads(c.kubectl("get", "cm", "keep", "-o", "json").stdout)
        svc_before = json.loads(c.kubectl("get", "svc", "keep", "-o", "json").stdout)
    finally:
        c.stop()
    c.start()
    try:
        after = json.loads(c.kubectl("get", "cm", "keep", "-o", "json").stdout)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        svc = json.loads(c.kubectl("get", "svc", "keep", "-o", "json").stdout)
        assert svc["spec"]["clusterIP"] == svc_before["spec"]["clusterIP"]
        # New writes continue above the old revisions.
        c.kubectl("label", "cm", "keep", "x=y")
        again = json.loads(c.kubectl("get", "cm", "keep", "-o", "json").stdout)
        assert int(again["metadata"]["resourceVersion"]) > \
            int(before["metadata"]["resourceVersion"])
    finally:
        c.stop()
