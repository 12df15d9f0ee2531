"""A real node: pods created with kubectl run on containerd, as a user sees them."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
import time

import aiohttp
import pytest

from pyk8s.cri.remote import RemoteRuntime

from .conftest import SUBNET, _wait

pytestmark = pytest.mark.root


def apply(cluster, ns: str, kubelet, name: str, containers: list[dict], **spec) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": kubelet.name, "automountServiceAccountToken": False,
                     "containers": containers, **spec}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def get(cluster, ns: str, name: str) -> dict:
    return cluster.json("get", "pod", name, "-n", ns)


def wait_phase(cluster, ns: str, name: str, phases: tuple[str, ...], timeout: float = 60):
    def check():
        p = get(cluster, ns, name)
        return p if p["status"].get("phase") in phases else None
    return _wait(check, timeout=timeout, what=f"pod {name} in {phases}", interval=0.2)


def test_an_nginx_pod_runs_and_answers_on_its_pod_ip(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "web", [{"name": "nginx", "image": "nginx"}])
    p = wait_phase(cluster, ns, "web", ("Running",))
    ip = p["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET)
    [cs] = p["status"]["containerStatuses"]
    assert cs["ready"] and cs["containerID"].startswith("containerd://")
    assert cs["image"] == "nginx" and cs["imageID"].startswith("sha256:")
    wide = cluster.kubectl("get", "pod", "web", "-n", ns, "-o", "wide").stdout
    assert "Running" in wide and ip in wide and kubelet.name in wide

    async def fetch():
        deadline = time.monotonic() + 30  # nginx may take a moment to listen
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                try:
                    async with s.get(f"http://{ip}/", timeout=aiohttp.ClientTimeout(2)) as r:
                        return r.status, await r.text()
                except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                    await asyncio.sleep(0.1)
        raise AssertionError(f"nginx on {ip} never answered")

    status, text = asyncio.run(fetch())
    assert status == 200 and "Welcome to nginx!" in text


def read_logs(kubelet, ns: str, pod: str, container: str, **query) -> tuple[int, str]:
    """Through the kubelet's HTTPS endpoint, as the API server's pods/log proxy will."""
    async def go():
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        url = f"https://127.0.0.1:{kubelet.port}/containerLogs/{ns}/{pod}/{container}"
        async with aiohttp.ClientSession() as s:
            async with s.get(url, params={k: str(v).lower() if isinstance(v, bool) else str(v)
                                          for k, v in query.items()}, ssl=ctx) as r:
                return r.status, await r.text()
    return asyncio.run(go())


def test_a_busybox_pods_output_is_readable_through_the_log_endpoint(cluster, kubelet, ns):
    script = "for i in 1 2 3; do echo line $i; done; echo oops >&2"
    apply(cluster, ns, kubelet, "talk", [{"name": "sh", "image": "busybox",
                                          "command": ["sh", "-c", script]}],
          restartPolicy="Never")
    wait_phase(cluster, ns, "talk", ("Succeeded",))
    code, text = read_logs(kubelet, ns, "talk", "sh")
    # stdout and stderr are separate pipes: their lines interleave in any order
    assert code == 200 and sorted(text.splitlines()) == ["line 1", "line 2", "line 3", "oops"]
    assert [line for line in text.splitlines() if line != "oops"] == \
        ["line 1", "line 2", "line 3"]
    code, text = read_logs(kubelet, ns, "talk", "sh", tailLines=2)
    assert code == 200 and len(text.splitlines()) == 2
    assert read_logs(kubelet, ns, "talk", "sh", limitBytes=3) in ((200, "lin"), (200, "oop"))
    code, text = read_logs(kubelet, ns, "talk", "sh", timestamps=True)
    assert code == 200 and any(line.endswith("Z line 1") for line in text.splitlines())
    code, text = read_logs(kubelet, ns, "talk", "sh", previous=True)
    assert code == 400
    assert json.loads(text)["message"] == \
        f'previous terminated container "sh" in pod "talk" not found'


def test_a_crashing_container_restarts_with_back_off(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "crash", [{"name": "c", "image": "busybox",
                                           "command": ["sh", "-c", "echo boom; exit 3"]}])

    def backing_off():
        out = cluster.kubectl("get", "pod", "crash", "-n", ns, "--no-headers").stdout
        return out if "CrashLoopBackOff" in out else None

    line = _wait(backing_off, timeout=60, what="CrashLoopBackOff", interval=0.2)
    assert line.split()[0] == "crash"
    [cs] = get(cluster, ns, "crash")["status"]["containerStatuses"]
    assert cs["restartCount"] >= 1
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["state"]["waiting"]["message"].startswith("back-off 10s restarting failed")

    # the kubelet writes its events in the background, apart from the pod's status
    def backoff_event():
        events = cluster.kubectl("get", "events", "-n", ns).stdout
        return "BackOff" in events and "Back-off restarting failed container c" in events
    _wait(backoff_event, timeout=30, what="the BackOff event")
    # the previous run's output stays readable
    assert read_logs(kubelet, ns, "crash", "c", previous=True) == (200, "boom\n")


def test_restart_policy_never_pods_end_with_exit_codes(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "ok", [{"name": "c", "image": "busybox",
                                        "command": ["true"]}], restartPolicy="Never")
    apply(cluster, ns, kubelet, "bad", [{"name": "c", "image": "busybox",
                                         "command": ["sh", "-c", "exit 7"]}],
          restartPolicy="Never")
    ok = wait_phase(cluster, ns, "ok", ("Succeeded", "Failed"))
    bad = wait_phase(cluster, ns, "bad", ("Succeeded", "Failed"))
    assert ok["status"]["phase"] == "Succeeded"
    assert bad["status"]["phase"] == "Failed"
    done = ok["status"]["containerStatuses"][0]["state"]["terminated"]
    failed = bad["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (done["exitCode"], done["reason"]) == (0, "Completed")
    assert (failed["exitCode"], failed["reason"]) == (7, "Error")
    table = cluster.kubectl("get", "pods", "-n", ns, "--no-headers").stdout
    assert any(line.split()[:3] == ["ok", "0/1", "Completed"] for line in table.splitlines())
    assert any(line.split()[:3] == ["bad", "0/1", "Error"] for line in table.splitlines())


def _pod_containers(kubelet, uid: str) -> list:
    async def go():
        runtime = RemoteRuntime(kubelet.socket, request_timeout=10)
        try:
            return await runtime.list_containers(labels={"io.kubernetes.pod.uid": uid})
        finally:
            await runtime.close()
    return asyncio.run(go())


def test_deletion_stops_containers_within_the_grace_period(cluster, kubelet, ns):
    # sleep as PID 1 ignores SIGTERM: only the kill at the end of the grace period stops it
    apply(cluster, ns, kubelet, "slow", [{"name": "c", "image": "busybox",
                                          "command": ["sleep", "3600"]}],
          terminationGracePeriodSeconds=3)
    apply(cluster, ns, kubelet, "quick", [{"name": "c", "image": "nginx"}])
    slow = wait_phase(cluster, ns, "slow", ("Running",))
    wait_phase(cluster, ns, "quick", ("Running",))
    assert _pod_containers(kubelet, slow["metadata"]["uid"])
    start = time.monotonic()
    cluster.kubectl("delete", "pod", "slow", "quick", "-n", ns, timeout=60)
    took = time.monotonic() - start
    # waited out the 3 s grace period, then killed: well before the default 30 s
    assert 2.5 < took < 20, took
    assert cluster.kubectl("get", "pod", "slow", "-n", ns, check=False).returncode != 0
    _wait(lambda: _pod_containers(kubelet, slow["metadata"]["uid"]) == [], timeout=30,
          what="the pod's containers to be removed")
    _wait(lambda: "Stopping container c" in cluster.kubectl("get", "events", "-n", ns).stdout,
          timeout=30, what="the Killing event")


def test_a_restarted_kubelet_adopts_its_pods(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "keep", [{"name": "c", "image": "busybox",
                                          "command": ["sleep", "3600"]}])
    before = wait_phase(cluster, ns, "keep", ("Running",))
    uid = before["metadata"]["uid"]
    [cs] = before["status"]["containerStatuses"]
    kubelet.stop()
    mark = kubelet.log.stat().st_size
    kubelet.start()

    def adopted():
        text = kubelet.log.read_text()[mark:]
        return f"pod keep_{ns}({uid}): adopted 1 running container(s)" in text

    _wait(adopted, timeout=60, what="the restarted kubelet to sync the pod")
    [again] = get(cluster, ns, "keep")["status"]["containerStatuses"]
    assert again["containerID"] == cs["containerID"]
    assert again["restartCount"] == 0 and "running" in again["state"]
    [container] = _pod_containers(kubelet, uid)
    assert f"containerd://{container.id}" == cs["containerID"]
    # and the new kubelet controls the pod
    cluster.kubectl("delete", "pod", "keep", "-n", ns, "--grace-period=1", timeout=60)
    _wait(lambda: _pod_containers(kubelet, uid) == [], timeout=30,
          what="the pod's containers to be removed")


def test_a_memory_hungry_container_is_oom_killed(cluster, kubelet, ns):
    # tail keeps a line-less stream in memory: it grows until the 24Mi limit kills it
    apply(cluster, ns, kubelet, "hog", [{
        "name": "c", "image": "busybox",
        "command": ["sh", "-c", "head -c 256m /dev/zero | tail"],
        "resources": {"limits": {"memory": "24Mi", "cpu": "500m"}}}], restartPolicy="Never")
    p = wait_phase(cluster, ns, "hog", ("Succeeded", "Failed"), timeout=60)
    terminated = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert p["status"]["phase"] == "Failed"
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137
    assert p["status"]["qosClass"] == "Guaranteed"
