"""A real API server plus the workload controllers, driven by real kubectl.

One API server and one controller-manager process (``pyk8s.controllers.manager.run``
as ``system:kube-controller-manager`` with --use-service-account-credentials, so each
controller acts as its own kube-system service account; leader election on the
kube-system Lease), running the workload controllers, the serviceaccount controller
pods need, and the garbage collector and PVC protection controllers StatefulSet claim
retention relies on, per session; each test works in its own
namespace. There is no kubelet: ``Pods.run`` plays it by writing pod status
through the API (Running and Ready, or Succeeded/Failed), the way a user would see
it from a node.
"""
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from support import cluster as support_cluster
from support.cluster import KUBECTL, free_port, stop_process


def eventually(check, timeout=30.0, interval=0.1, message="condition"):
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as err:
            last = err
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}; last: {last!r}")


class Cluster(support_cluster.Cluster):
    """The shared API server harness plus this package's controller-manager process."""

    def __init__(self, data_dir: str, port: int):
        super().__init__(data_dir, port)
        self.manager_kubeconfig = os.path.join(data_dir, "server", "cred",
                                               "controller.kubeconfig")
        self.manager = None

    def start_manager(self):
        log = open(os.path.join(self.data_dir, "controller-manager.log"), "ab")
        code = ("import asyncio, logging, sys\n"
                "logging.basicConfig(level=logging.INFO)\n"
                "from pyk8s.controllers import manager\n"
                "names = list(manager.WORKLOAD_CONTROLLERS) + ['serviceaccount-controller',\n"
                "    'garbage-collector-controller', 'persistentvolumeclaim-protection-controller']\n"
                "asyncio.run(manager.run(sys.argv[1], names, leader_elect=True,\n"
                "                        use_service_account_credentials=True))\n")
        # As `pyk8s server` runs it: its own identity (system:kube-controller-manager)
        # and each controller its kube-system service account.
        self.manager = subprocess.Popen([sys.executable, "-c", code, self.manager_kubeconfig],
                                        stdout=log, stderr=subprocess.STDOUT)
        eventually(lambda: self.kubectl("get", "lease", "-n", "kube-system", "kube-controller-manager",
                                        "-o", "jsonpath={.spec.holderIdentity}", check=False).stdout,
                   timeout=60, message="the controller manager to take the lease")
        # The leader first gets each controller its service account's token, then starts
        # them all at once: once the serviceaccount controller has given a namespace its
        # default ServiceAccount, every controller runs.
        self.kubectl("create", "namespace", "controllers-running")
        eventually(lambda: self.kubectl("get", "serviceaccount", "default", "-n",
                                        "controllers-running", check=False).returncode == 0,
                   timeout=60, message="the controllers to start")

    def stop(self):
        if self.manager and self.manager.poll() is None:
            stop_process(self.manager, 10)
        super().stop()

    def get(self, ns, *what):
        args = ["get", *what, "-o", "json"] + (["-n", ns] if ns else [])
        return json.loads(self.kubectl(*args).stdout)


class Pods:
    """The kubelet's part, played through the API: set pod phases and readiness."""

    def __init__(self, cluster: Cluster, ns: str):
        self.cluster, self.ns = cluster, ns

    def list(self, selector=None):
        args = ["pods"] + (["-l", selector] if selector else [])
        return self.cluster.get(self.ns, *args)["items"]

    def set_status(self, name, status):
        self.cluster.kubectl("patch", "pod", name, "-n", self.ns, "--subresource=status",
                             "--type=merge", "-p", json.dumps({"status": status}))

    def run(self, selector=None, *, only_pending=True):
        """Mark pods Running and Ready (as a kubelet would once containers start)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        done = []
        for pod in self.list(selector):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            phase = (pod.get("status") or {}).get("phase")
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (pod.get("status") or {}).get("conditions") or [])
            if only_pending and (phase != "Pending" or ready):
                continue
            self.set_status(pod["metadata"]["name"], {
                "phase": "Running", "startTime": now,
                "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                               for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]})
            done.append(pod["metadata"]["name"])
        return done

    @contextlib.contextmanager
    def kubelet(self, selector=None, interval=0.2):
        """While active, every new pod of the namespace becomes Running and Ready."""
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                try:
                    self.run(selector)
                except AssertionError:
                    pass  # a pod went away between list and patch
                stop.wait(interval)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(10)

    def finish(self, name, *, succeeded=True, exit_code=None):
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        code = (0 if succeeded else 1) if exit_code is None else exit_code
        self.set_status(name, {
            "phase": "Succeeded" if succeeded else "Failed",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": False,
                                   "restartCount": 0, "state": {"terminated": {
                                       "exitCode": code, "startedAt": now, "finishedAt": now,
                                       "reason": "Completed" if code == 0 else "Error"}}}]})


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("pyk8s")), free_port())
    c.start()
    try:
        c.start_manager()
        yield c
    finally:
        c.stop()


@pytest.fixture
def ns(cluster):
    name = "t-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    # Pods need the namespace's default ServiceAccount (the serviceaccount controller's).
    eventually(lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name,
                                       check=False).returncode == 0,
               message="the default ServiceAccount")
    yield name


@pytest.fixture
def pods(cluster, ns):
    return Pods(cluster, ns)
