"""Probes and lifecycle hooks on the fake node: what `kubectl get pod` and the events show."""
import asyncio

import pytest

from pyk8s.cri.fake import FakeRuntime
from pyk8s.cri.runtime import DeadlineExceeded, ExecResult
from pyk8s.kubelet.probes import Result

from .fakenode import make_node, ns
from .helpers import container, pod


class FakeNetwork:
    """The `ProbeNetwork` twin: answers by URL / address, records every call."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.http: dict[str, tuple[Result, str]] = {}
        self.tcp: dict[str, tuple[Result, str]] = {}
        self.grpc: dict[str, tuple[Result, str]] = {}

    async def http_get(self, url, *, headers, timeout):
        self.calls.append(("http", url, dict(headers), timeout))
        return self.http.get(url, (Result.FAILURE, f"Get \"{url}\": dial tcp: connect: "
                                                   "connection refused"))

    async def tcp_connect(self, host, port, *, timeout):
        self.calls.append(("tcp", host, port, timeout))
        return self.tcp.get(f"{host}:{port}", (Result.FAILURE,
                                               f"dial tcp {host}:{port}: connect: "
                                               "connection refused"))

    async def grpc_check(self, host, port, service, *, timeout):
        self.calls.append(("grpc", host, port, service, timeout))
        return self.grpc.get(f"{host}:{port}", (Result.FAILURE,
                                                "service unhealthy (responded with "
                                                "\"NOT_SERVING\")"))


class Exec:
    """Exec results per command word (`healthy`, `ready`, ...), default exit 0."""

    def __init__(self):
        self.codes: dict[str, int] = {}
        self.calls: list[list[str]] = []
        self.timeout_on: set[str] = set()

    def __call__(self, cid, cmd):
        self.calls.append(cmd)
        if cmd[-1] in self.timeout_on:
            raise DeadlineExceeded("deadline exceeded")
        code = self.codes.get(cmd[-1], 0)
        return ExecResult(stdout=f"{cmd[-1]} says {code}\n".encode(), stderr=b"",
                          exit_code=code)


@pytest.fixture
async def env(tmp_path):
    execs, network = Exec(), FakeNetwork()
    holder = {}
    runtime = FakeRuntime(images=["busybox", "registry.k8s.io/pause:3.9"],
                          clock=lambda: ns(holder["clock"]), exec_handler=execs)
    from pyk8s.client.clock import FakeClock
    holder["clock"] = clock = FakeClock()
    node = await make_node(tmp_path, runtime=runtime, clock=clock, probe_network=network)
    node.execs, node.network = execs, network
    yield node
    await node.kubelet.stop()


def probe(command: str, **fields) -> dict:
    return {"exec": {"command": ["check", command]}, "periodSeconds": 10,
            "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3, **fields}


def status_of(p: dict, name: str = "app") -> dict:
    return next(s for s in p["status"]["containerStatuses"] if s["name"] == name)


def conditions(p: dict) -> dict:
    return {c["type"]: c for c in p["status"]["conditions"]}


async def test_readiness_drives_container_ready_and_the_ready_condition(env):
    env.execs.codes["ready"] = 1
    await env.create(pod(containers=[container(readinessProbe=probe("ready"))]))
    await env.settle()
    p = await env.get("web")
    assert status_of(p)["ready"] is False and status_of(p)["started"] is True
    ready = conditions(p)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [app]"
    assert conditions(p)["ContainersReady"]["status"] == "False"
    assert ("Unhealthy", "Readiness probe failed: ready says 1\n") in await env.events()

    env.execs.codes["ready"] = 0
    await env.advance(10)
    p = await env.get("web")
    assert status_of(p)["ready"] is True
    assert conditions(p)["Ready"]["status"] == "True"
    assert conditions(p)["ContainersReady"]["status"] == "True"

    env.execs.codes["ready"] = 1
    await env.advance(10)
    await env.advance(10)
    assert status_of(await env.get("web"))["ready"] is True  # 2 of 3 failures
    await env.advance(10)
    assert status_of(await env.get("web"))["ready"] is False


async def test_success_threshold_needs_consecutive_successes(env):
    await env.create(pod(containers=[container(
        readinessProbe=probe("ready", successThreshold=2))]))
    await env.settle()
    assert status_of(await env.get("web"))["ready"] is False
    await env.advance(10)
    assert status_of(await env.get("web"))["ready"] is True


async def test_a_failing_liveness_probe_restarts_the_container(env):
    env.execs.codes["alive"] = 1
    await env.create(pod(containers=[container(livenessProbe=probe("alive",
                                                                    failureThreshold=2))]))
    await env.settle()
    assert len(env.containers()) == 1
    assert status_of(await env.get("web"))["ready"] is True  # liveness is not readiness
    await env.advance(10)
    assert len(env.containers()) == 1  # one failure of two
    await env.advance(10)
    assert len(env.containers()) == 2
    p = await env.get("web")
    assert status_of(p)["restartCount"] == 1
    events = await env.events()
    assert ("Unhealthy", "Liveness probe failed: alive says 1\n") in events
    assert ("Killing", "Container app failed liveness probe, will be restarted") in events
    # the new instance starts from a clean slate: one more failure is not enough
    env.execs.codes["alive"] = 0
    await env.advance(10)
    await env.advance(10)
    assert len(env.containers()) == 2


async def test_initial_delay_holds_the_first_probe(env):
    await env.create(pod(containers=[container(livenessProbe=probe(
        "alive", initialDelaySeconds=15))]))
    await env.settle()
    assert not env.execs.calls
    await env.advance(10)
    assert not env.execs.calls
    await env.advance(10)
    assert env.execs.calls == [["check", "alive"]]


async def test_the_startup_probe_gates_liveness_and_readiness(env):
    env.execs.codes["started"] = 1
    env.execs.codes["alive"] = 1
    await env.create(pod(containers=[container(
        startupProbe=probe("started", failureThreshold=30),
        livenessProbe=probe("alive", failureThreshold=1),
        readinessProbe=probe("ready"))]))
    await env.settle()
    await env.advance(10)
    s = status_of(await env.get("web"))
    assert s["started"] is False and s["ready"] is False
    assert {c[-1] for c in env.execs.calls} == {"started"}
    env.execs.codes["started"] = 0
    env.execs.codes["alive"] = 0
    await env.advance(10)
    s = status_of(await env.get("web"))
    assert s["started"] is True and s["ready"] is False  # readiness runs at its next period
    await env.advance(10)
    assert status_of(await env.get("web"))["ready"] is True
    calls = len(env.execs.calls)
    await env.advance(10)
    assert "started" not in {c[-1] for c in env.execs.calls[calls:]}  # stops once started


async def test_a_failed_startup_probe_restarts_the_container(env):
    env.execs.codes["started"] = 1
    await env.create(pod(containers=[container(startupProbe=probe("started",
                                                                   failureThreshold=1))]))
    await env.settle()
    await env.advance(10)
    assert ("Killing", "Container app failed startup probe, will be restarted") \
        in await env.events()
    assert status_of(await env.get("web"))["restartCount"] == 1


async def test_exec_probes_time_out_and_expand_literal_env(env):
    env.execs.timeout_on.add("slow")
    await env.create(pod(containers=[container(
        env=[{"name": "WHAT", "value": "slow"}],
        readinessProbe={"exec": {"command": ["check", "$(WHAT)"]}, "timeoutSeconds": 3})]))
    await env.settle()
    assert env.execs.calls[0] == ["check", "slow"]
    exec_calls = [c for c in env.runtime.calls if c[0] == "exec_sync"]
    assert exec_calls
    assert ("Unhealthy", 'Readiness probe failed: command "check slow" timed out') \
        in await env.events()


async def test_http_probes_go_to_the_pod_ip_with_named_ports_and_headers(env):
    c = container(ports=[{"name": "http", "containerPort": 8080}],
                  readinessProbe={"httpGet": {"path": "healthz", "port": "http",
                                              "scheme": "HTTP",
                                              "httpHeaders": [{"name": "X-Probe",
                                                               "value": "1"},
                                                              {"name": "accept",
                                                               "value": "text/plain"}]},
                                  "periodSeconds": 5})
    await env.create(pod(containers=[c]))
    await env.settle()
    ip = (await env.get("web"))["status"]["podIP"]
    url = f"http://{ip}:8080/healthz"
    [(kind, called, headers, timeout)] = [x for x in env.network.calls if x[0] == "http"]
    assert called == url and timeout == 1.0
    assert headers == {"User-Agent": "kube-probe/1.32", "X-Probe": "1",
                       "accept": "text/plain"}
    assert status_of(await env.get("web"))["ready"] is False
    env.network.http[url] = (Result.SUCCESS, "ok")
    await env.advance(5)
    assert status_of(await env.get("web"))["ready"] is True


async def test_probes_never_dial_addresses_other_than_the_pods(env):
    await env.create(pod(containers=[container(readinessProbe={
        "tcpSocket": {"host": "192.0.2.1", "port": 80}})]))
    await env.settle()
    assert not env.network.calls
    events = await env.events()
    assert any(r == "Unhealthy" and m.startswith("Readiness probe errored: host 192.0.2.1 "
                                                 "is not an IP of the pod")
               for r, m in events)
    assert status_of(await env.get("web"))["ready"] is False


async def test_tcp_and_grpc_probes(env):
    await env.create(pod(containers=[
        container("a", readinessProbe={"tcpSocket": {"port": 80}}),
        container("b", livenessProbe={"grpc": {"port": 9000, "service": "svc"},
                                      "failureThreshold": 1})]))
    await env.settle()
    ip = (await env.get("web"))["status"]["podIP"]
    assert ("tcp", ip, 80, 1.0) in env.network.calls
    events = await env.events()
    assert ("Unhealthy", f"Readiness probe failed: dial tcp {ip}:80: connect: connection "
                         "refused") in events
    await env.advance(10)
    assert ("grpc", ip, 9000, "svc", 1.0) in env.network.calls
    assert ("Unhealthy", 'Liveness probe failed: service unhealthy (responded with '
                         '"NOT_SERVING")') in await env.events()
    assert len(env.containers("b")) == 2


async def test_deletion_stops_liveness_probes(env):
    env.execs.codes["alive"] = 1
    await env.create(pod(containers=[container(livenessProbe=probe("alive",
                                                                    failureThreshold=5))]))
    await env.settle()
    await env.client.delete(__import__("pyk8s.client.resources", fromlist=["PODS"]).PODS,
                            "web", namespace="default")
    await env.settle()
    assert not [k for k in env.kubelet.probes.workers if k[2] == "Liveness"]


# ---- lifecycle hooks -------------------------------------------------------------------


async def test_post_start_runs_after_start_and_a_failure_kills_the_container(env):
    env.execs.codes["hook"] = 7
    await env.create(pod(containers=[container(
        lifecycle={"postStart": {"exec": {"command": ["sh", "hook"]}}})]))
    await env.settle()
    assert ["sh", "hook"] in env.execs.calls
    events = await env.events()
    failed = [m for r, m in events if r == "FailedPostStartHook"]
    assert failed and failed[0].startswith(
        'Exec lifecycle hook ([sh hook]) for Container "app" in Pod "web_default(')
    assert "failed - error: command 'sh hook' exited with 7: , message: \"hook says 7\\n\"" \
        in failed[0]
    assert ("Killing", "FailedPostStartHook") in events
    assert env.containers()[0].state.value != "CONTAINER_RUNNING"


async def test_pre_stop_runs_before_the_stop_and_spends_the_grace_period(env, monkeypatch):
    stops = []
    original = env.runtime.stop_container

    async def record(cid, *, timeout):
        stops.append((list(env.execs.calls), timeout))
        await original(cid, timeout=timeout)

    monkeypatch.setattr(env.runtime, "stop_container", record)
    await env.create(pod(containers=[container(
        lifecycle={"preStop": {"exec": {"command": ["sh", "drain"]}}})]))
    await env.settle()
    await env.client.delete(__import__("pyk8s.client.resources", fromlist=["PODS"]).PODS,
                            "web", namespace="default")
    await env.settle()
    [(calls_before_stop, timeout)] = stops
    assert ["sh", "drain"] in calls_before_stop
    assert timeout == 30


async def test_a_sleep_pre_stop_hook_is_taken_from_the_grace_period(env, monkeypatch):
    stops = []
    original = env.runtime.stop_container

    async def record(cid, *, timeout):
        stops.append(timeout)
        await original(cid, timeout=timeout)

    monkeypatch.setattr(env.runtime, "stop_container", record)
    await env.create(pod(containers=[container(
        lifecycle={"preStop": {"sleep": {"seconds": 10}}})]))
    await env.settle()
    await env.client.delete(__import__("pyk8s.client.resources", fromlist=["PODS"]).PODS,
                            "web", namespace="default")
    for _ in range(20):
        await asyncio.sleep(0)
    env.clock.advance(10)
    await env.settle()
    assert stops == [20]


async def test_http_pre_stop_hooks_dial_the_pod(env):
    await env.create(pod(containers=[container(
        ports=[{"name": "web", "containerPort": 80}],
        lifecycle={"preStop": {"httpGet": {"path": "/quit", "port": "web"}}})]))
    await env.settle()
    ip = (await env.get("web"))["status"]["podIP"]
    await env.client.delete(__import__("pyk8s.client.resources", fromlist=["PODS"]).PODS,
                            "web", namespace="default")
    await env.settle()
    assert any(c[0] == "http" and c[1] == f"http://{ip}:80/quit" for c in env.network.calls)
    failed = [m for r, m in await env.events() if r == "FailedPreStopHook"]
    assert failed and failed[0].startswith('HTTP lifecycle hook (/quit) for Container "app"')


# ---- probes on sidecars (init containers with restartPolicy Always) ----------------------

def init_status_of(p: dict, name: str = "side") -> dict:
    return next(s for s in p["status"]["initContainerStatuses"] if s["name"] == name)


async def test_a_sidecars_startup_probe_holds_back_the_app(env):
    env.execs.codes["started"] = 1
    await env.create(pod(init=[container("side", restartPolicy="Always",
                                         startupProbe=probe("started", failureThreshold=30))],
                         containers=[container("app")]))
    await env.settle()
    await env.advance(10)
    p = await env.get("web")
    assert p["status"]["phase"] == "Pending"
    assert init_status_of(p)["started"] is False and not env.containers("app")
    assert conditions(p)["Initialized"]["status"] == "False"
    env.execs.codes["started"] = 0
    await env.advance(10)
    p = await env.get("web")
    assert init_status_of(p)["started"] is True and init_status_of(p)["ready"] is True
    assert len(env.containers("app")) == 1
    assert p["status"]["phase"] == "Running"
    assert conditions(p)["Initialized"]["status"] == "True"


async def test_a_sidecar_failing_liveness_restarts_under_never(env):
    env.execs.codes["alive"] = 1
    await env.create(pod(init=[container("side", restartPolicy="Always",
                                         livenessProbe=probe("alive", failureThreshold=1))],
                         containers=[container("app")], restart="Never"))
    await env.settle()
    assert len(env.containers("side")) == 1
    await env.advance(10)
    assert len(env.containers("side")) == 2
    assert ("Killing", "Init container side failed liveness probe") in await env.events()
    p = await env.get("web")
    assert init_status_of(p)["restartCount"] == 1 and p["status"]["phase"] == "Running"
    assert len(env.containers("app")) == 1


async def test_a_sidecars_readiness_counts_for_the_pod(env):
    env.execs.codes["ready"] = 1
    await env.create(pod(init=[container("side", restartPolicy="Always",
                                         readinessProbe=probe("ready"))],
                         containers=[container("app")]))
    await env.settle()
    p = await env.get("web")
    assert init_status_of(p)["ready"] is False and init_status_of(p)["started"] is True
    assert conditions(p)["Ready"]["message"] == "containers with unready status: [side]"
    env.execs.codes["ready"] = 0
    await env.advance(10)
    p = await env.get("web")
    assert init_status_of(p)["ready"] is True
    assert conditions(p)["Ready"]["status"] == "True"
