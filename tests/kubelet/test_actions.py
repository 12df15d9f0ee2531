"""computePodActions: what a sync must do, decided from the pod and the runtime."""
from pyk8s.kubelet.actions import compute_pod_actions, next_init_container, sandbox_changed

from .helpers import container, pod
from .runtime_builders import SECOND, T0, record, sandbox, status


def test_a_new_pod_gets_a_sandbox_and_all_its_containers():
    p = pod(containers=[container("a"), container("b")])
    actions = compute_pod_actions(p, status(p))
    assert actions.create_sandbox and actions.kill_pod
    assert (actions.attempt, actions.sandbox_id) == (0, "")
    assert actions.containers_to_start == [0, 1]


def test_a_new_pod_with_init_containers_starts_the_first_init_container_only():
    p = pod(init=[container("i1"), container("i2")], containers=[container("a")])
    actions = compute_pod_actions(p, status(p))
    assert actions.create_sandbox
    assert actions.next_init_container["name"] == "i1"
    assert actions.containers_to_start == []


def test_init_containers_run_in_order_then_the_regular_ones():
    p = pod(init=[container("i1"), container("i2")], containers=[container("a")])
    sb = sandbox(p)
    running = status(p, [sb], [record(p, "i1", init=True)])
    assert compute_pod_actions(p, running).nothing
    first_done = status(p, [sb], [record(p, "i1", "exited", init=True)])
    assert compute_pod_actions(p, first_done).next_init_container["name"] == "i2"
    all_done = status(p, [sb], [record(p, "i1", "exited", init=True),
                                record(p, "i2", "exited", init=True, created=T0 + SECOND)])
    actions = compute_pod_actions(p, all_done)
    assert actions.next_init_container is None and actions.containers_to_start == [0]


def test_a_failed_init_container_is_retried_unless_the_policy_is_never():
    p = pod(init=[container("i1")], containers=[container("a")])
    failed = status(p, [sandbox(p)], [record(p, "i1", "exited", exit_code=1, init=True)])
    assert compute_pod_actions(p, failed).next_init_container["name"] == "i1"
    never = pod(init=[container("i1")], containers=[container("a")], restart="Never")
    failed = status(never, [sandbox(never)],
                    [record(never, "i1", "exited", exit_code=1, init=True)])
    actions = compute_pod_actions(never, failed)
    assert actions.kill_pod and actions.next_init_container is None


def test_restart_policies_decide_about_exited_containers():
    for policy, code, restarts in [("Always", 0, True), ("Always", 1, True),
                                   ("OnFailure", 0, False), ("OnFailure", 2, True),
                                   ("Never", 0, False), ("Never", 1, False)]:
        p = pod(restart=policy)
        s = status(p, [sandbox(p)], [record(p, "app", "exited", exit_code=code)])
        actions = compute_pod_actions(p, s)
        assert (actions.containers_to_start == [0]) is restarts, (policy, code)
        # nothing left running and nothing to start: the sandbox goes down
        assert actions.kill_pod is (not restarts), (policy, code)


def test_a_running_container_whose_spec_changed_is_killed_and_restarted():
    p = pod()
    s = status(p, [sandbox(p)], [record(p, "app", spec_hash="0ld")])
    actions = compute_pod_actions(p, s)
    assert actions.containers_to_start == [0]
    [(cid, info)] = actions.containers_to_kill.items()
    assert info.message == "Container app definition changed, will be restarted"


def test_a_failed_liveness_probe_kills_and_restarts_the_container():
    p = pod()
    r = record(p, "app")
    actions = compute_pod_actions(p, status(p, [sandbox(p)], [r]), liveness_failed={r.id})
    assert actions.containers_to_kill[r.id].message == \
        "Container app failed liveness probe, will be restarted"
    assert actions.containers_to_start == [0]


def test_a_dead_sandbox_is_replaced_with_the_next_attempt():
    p = pod()
    dead = sandbox(p, ready=False, attempt=2)
    s = status(p, [dead], [record(p, "app", "exited", exit_code=137)])
    actions = compute_pod_actions(p, s)
    assert actions.create_sandbox and actions.attempt == 3 and actions.sandbox_id == dead.id
    assert actions.containers_to_start == [0]


def test_a_finished_never_pod_gets_no_new_sandbox():
    p = pod(restart="Never")
    s = status(p, [sandbox(p, ready=False)], [record(p, "app", "exited")])
    actions = compute_pod_actions(p, s)
    assert actions.kill_pod and not actions.create_sandbox


def test_onfailure_pod_with_a_new_sandbox_skips_succeeded_containers():
    p = pod(restart="OnFailure", containers=[container("ok"), container("bad")])
    s = status(p, [sandbox(p, ready=False)],
               [record(p, "ok", "exited"), record(p, "bad", "exited", exit_code=1)])
    assert compute_pod_actions(p, s).containers_to_start == [1]


def test_sandbox_changed_checks_network_mode_and_address():
    p = pod()
    assert sandbox_changed(p, status(p, [sandbox(p)]))[0] is False
    assert sandbox_changed(p, status(p, [sandbox(p, ip="")]))[0] is True
    host = pod(hostNetwork=True)
    assert sandbox_changed(host, status(host, [sandbox(host, host_network=True)]))[0] is False
    assert sandbox_changed(host, status(host, [sandbox(host)]))[0] is True
    two = status(p, [sandbox(p), sandbox(p, created=T0 + SECOND)])
    assert sandbox_changed(p, two)[0] is True


def test_next_init_container_is_done_once_a_regular_container_runs():
    p = pod(init=[container("i1")], containers=[container("a")])
    s = status(p, [sandbox(p)], [record(p, "a")])
    assert next_init_container(p, s) == (None, None, True)


def test_a_deleted_pod_restarts_nothing():
    p = pod()
    p["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:30Z"
    s = status(p, [sandbox(p)], [record(p, "app", "exited", exit_code=1)])
    actions = compute_pod_actions(p, s)
    assert actions.containers_to_start == [] and actions.kill_pod
