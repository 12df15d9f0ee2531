"""A PersistentVolumeClaim on the default local-path class, mounted by real pods."""
import pytest

from support.waiting import wait_for

pytestmark = pytest.mark.root

CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""


def pod(name: str, script: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "{script}"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - name: data
    persistentVolumeClaim: {{claimName: data}}
"""


def finished(kubectl, name):
    def done():
        phase = kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}",
                        check=False).stdout
        return phase if phase in ("Succeeded", "Failed") else None
    return wait_for(done, f"pod {name} to finish", 120)


def test_claim_is_provisioned_bound_and_keeps_data_across_pods(server):
    kubectl = server
    wait_for(lambda: "local-path" in kubectl("get", "storageclass", check=False).stdout,
             "the local-path StorageClass")
    kubectl("apply", "-f", "-", input=CLAIM)
    kubectl("apply", "-f", "-", input=pod("writer", "echo persisted > /data/file"))
    assert finished(kubectl, "writer") == "Succeeded"
    assert kubectl("get", "pvc", "data", "-o", "jsonpath={.status.phase}").stdout == "Bound"
    kubectl("apply", "-f", "-", input=pod("reader", "cat /data/file"))
    assert finished(kubectl, "reader") == "Succeeded"
    assert kubectl("logs", "reader").stdout.strip() == "persisted"
