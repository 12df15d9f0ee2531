"""generateAPIPodStatus: phase, conditions and container statuses as kubectl shows them."""
from pyk8s.kubelet import podstatus
from pyk8s.kubelet.podstatus import StartFailure, generate, get_phase

from .helpers import container, pod, with_status
from .runtime_builders import SECOND, T0, record, sandbox, status


def gen(p, s, **kw):
    kw.setdefault("old", p.get("status") or {})
    return generate(p, s, terminal=kw.pop("terminal", False), runtime_name="containerd",
                    host_ips=["192.0.2.10"], **kw)


def conditions(st):
    return {c["type"]: (c["status"], c.get("reason")) for c in st["conditions"]}


def test_a_fresh_pod_is_pending_with_containers_creating():
    p = pod()
    st = gen(p, status(p))
    assert st["phase"] == "Pending"
    [cs] = st["containerStatuses"]
    assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert (cs["image"], cs["ready"], cs["restartCount"], cs["started"]) == \
        ("busybox", False, 0, False)
    assert conditions(st) == {
        "PodReadyToStartContainers": ("False", None), "Initialized": ("True", None),
        "Ready": ("False", "ContainersNotReady"),
        "ContainersReady": ("False", "ContainersNotReady"), "PodScheduled": ("True", None)}
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["message"] == "containers with unready status: [app]"
    assert st["hostIP"] == "192.0.2.10" and st["qosClass"] == "BestEffort"
    assert "podIP" not in st


def test_a_running_pod_is_running_ready_with_its_ip_and_container_id():
    p = pod()
    r = record(p, "app")
    st = gen(p, status(p, [sandbox(p, ip="10.42.0.7")], [r]))
    assert st["phase"] == "Running"
    assert st["podIP"] == "10.42.0.7" and st["podIPs"] == [{"ip": "10.42.0.7"}]
    [cs] = st["containerStatuses"]
    assert cs["state"] == {"running": {"startedAt": "2025-01-01T00:00:01Z"}}
    assert cs["containerID"] == f"containerd://{r.id}" and cs["imageID"] == "sha256:abc"
    assert cs["ready"] is True and cs["started"] is True
    assert all(s == "True" for s, _ in conditions(st).values())


def test_restarted_container_shows_the_previous_run_as_last_state():
    p = pod()
    old = record(p, "app", "exited", exit_code=3, created=T0)
    new = record(p, "app", restart=1, created=T0 + 10 * SECOND)
    [cs] = gen(p, status(p, [sandbox(p)], [old, new]))["containerStatuses"]
    assert cs["restartCount"] == 1 and "running" in cs["state"]
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["lastState"]["terminated"]["containerID"] == f"containerd://{old.id}"


def test_crash_loop_back_off_waits_with_the_last_termination():
    p = pod()
    dead = record(p, "app", "exited", exit_code=1, restart=2)
    failure = StartFailure("CrashLoopBackOff", "back-off 20s restarting failed container=app "
                                               "pod=web_default(x)")
    st = gen(p, status(p, [sandbox(p)], [dead]), start_failures={"app": failure})
    [cs] = st["containerStatuses"]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1 and cs["restartCount"] == 2
    assert st["phase"] == "Running"  # restartPolicy Always: it is restarting


def test_never_pods_end_succeeded_or_failed_with_exit_codes():
    for code, phase in [(0, "Succeeded"), (7, "Failed")]:
        p = pod(restart="Never")
        st = gen(p, status(p, [sandbox(p, ready=False)],
                           [record(p, "app", "exited", exit_code=code)]))
        assert st["phase"] == phase
        assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == code
        expected = "PodCompleted" if code == 0 else "PodFailed"
        assert conditions(st)["Ready"] == ("False", expected)


def test_termination_messages_join_the_runtime_message():
    p = pod(restart="Never")
    r = record(p, "app", "exited", exit_code=1)
    st = gen(p, status(p, [sandbox(p)], [r]), termination_messages={r.id: "disk full"})
    assert st["containerStatuses"][0]["state"]["terminated"]["message"] == "disk full"


def test_init_container_statuses_keep_spec_order_and_show_progress():
    p = pod(init=[container("z-first"), container("a-second")], containers=[container("a")])
    s = status(p, [sandbox(p)], [record(p, "z-first", "exited", init=True)])
    st = gen(p, s)
    assert [c["name"] for c in st["initContainerStatuses"]] == ["z-first", "a-second"]
    first, second = st["initContainerStatuses"]
    assert first["ready"] is True and "terminated" in first["state"]
    assert second["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert conditions(st)["Initialized"] == ("False", "ContainersNotInitialized")
    init = next(c for c in st["conditions"] if c["type"] == "Initialized")
    assert init["message"] == "containers with incomplete status: [a-second]"
    assert st["phase"] == "Pending"


def test_a_failed_init_container_fails_a_never_pod():
    p = pod(restart="Never", init=[container("i")], containers=[container("a")])
    st = gen(p, status(p, [sandbox(p)], [record(p, "i", "exited", exit_code=1, init=True)]))
    assert st["phase"] == "Failed"


def test_terminal_phase_is_sticky_and_reason_is_kept():
    p = with_status(pod(), {"phase": "Failed", "reason": "Evicted", "message": "low memory"})
    st = gen(p, status(p, [sandbox(p)], [record(p, "app")]))
    assert (st["phase"], st["reason"], st["message"]) == ("Failed", "Evicted", "low memory")


def test_foreign_conditions_are_kept_first():
    p = with_status(pod(readinessGates=[{"conditionType": "example.com/lb"}]),
                    {"phase": "Running", "conditions": [
                        {"type": "example.com/lb", "status": "False"}]})
    st = gen(p, status(p, [sandbox(p)], [record(p, "app")]))
    assert st["conditions"][0]["type"] == "example.com/lb"
    assert conditions(st)["Ready"] == ("False", "ReadinessGatesNotReady")
    assert conditions(st)["ContainersReady"] == ("True", None)


def test_a_vanished_running_container_is_reported_as_terminated_unknown():
    p = with_status(pod(), {"phase": "Running", "containerStatuses": [
        {"name": "app", "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
         "lastState": {}, "restartCount": 0, "ready": True, "image": "busybox",
         "imageID": "", "containerID": "containerd://gone"}]})
    [cs] = gen(p, status(p, [sandbox(p)]))["containerStatuses"]
    assert cs["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert cs["restartCount"] == 1


def test_get_phase_table():
    p = pod(restart="OnFailure")
    running = {"name": "app", "state": {"running": {}}}
    failed = {"name": "app", "state": {"terminated": {"exitCode": 1}}}
    waiting_after_fail = {"name": "app", "state": {"waiting": {}},
                          "lastState": {"terminated": {"exitCode": 1}}}
    assert get_phase(p, [running], False) == "Running"
    assert get_phase(p, [failed], False) == "Running"  # OnFailure will restart it
    assert get_phase(p, [failed], True) == "Failed"
    assert get_phase(p, [waiting_after_fail], False) == "Running"
    assert get_phase(p, [], False) == "Pending"


def test_host_network_pods_have_the_node_address():
    p = pod(hostNetwork=True)
    st = gen(p, status(p, [sandbox(p, host_network=True)], [record(p, "app")]))
    assert st["podIP"] == "192.0.2.10"


def test_format_ns():
    assert podstatus.format_ns(T0) == "2025-01-01T00:00:00Z"
    assert podstatus.format_ns(0) is None
