"""computePodActions: what a sync must do, decided from the pod and the runtime."""
import pytest

from pyk8s.kubelet import pods
from pyk8s.kubelet.actions import (
    PodActions, compute_init_actions, compute_pod_actions, sandbox_changed, should_restart,
)

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
    assert actions.init_containers_to_start == [0]
    assert actions.containers_to_start == []


def test_init_containers_run_in_order_then_the_regular_ones():
    p = pod(init=[container("i1"), container("i2")], containers=[container("a")])
    sb = sandbox(p)
    running = status(p, [sb], [record(p, "i1", init=True)])
    assert compute_pod_actions(p, running).nothing
    first_done = status(p, [sb], [record(p, "i1", "exited", init=True)])
    assert compute_pod_actions(p, first_done).init_containers_to_start == [1]
    all_done = status(p, [sb], [record(p, "i1", "exited", init=True),
                                record(p, "i2", "exited", init=True, created=T0 + SECOND)])
    actions = compute_pod_actions(p, all_done)
    assert actions.init_containers_to_start == [] and actions.containers_to_start == [0]


def test_a_failed_init_container_is_retried_unless_the_policy_is_never():
    p = pod(init=[container("i1")], containers=[container("a")])
    failed = status(p, [sandbox(p)], [record(p, "i1", "exited", exit_code=1, init=True)])
    assert compute_pod_actions(p, failed).init_containers_to_start == [0]
    never = pod(init=[container("i1")], containers=[container("a")], restart="Never")
    failed = status(never, [sandbox(never)],
                    [record(never, "i1", "exited", exit_code=1, init=True)])
    actions = compute_pod_actions(never, failed)
    assert actions.kill_pod and actions.init_containers_to_start == []


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


def test_initialisation_is_done_once_a_regular_container_runs():
    p = pod(init=[container("i1")], containers=[container("a")])
    s = status(p, [sandbox(p)], [record(p, "a")])
    actions = PodActions()
    assert compute_init_actions(p, s, actions) is True
    assert actions.init_containers_to_start == []


def test_a_deleted_pod_restarts_nothing():
    p = pod()
    p["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:30Z"
    s = status(p, [sandbox(p)], [record(p, "app", "exited", exit_code=1)])
    actions = compute_pod_actions(p, s)
    assert actions.containers_to_start == [] and actions.kill_pod


# ---- sidecars: init containers with restartPolicy Always (KEP-753) -----------------------

def sidecar(name: str = "side") -> dict:
    return container(name, restartPolicy="Always")


def test_a_started_sidecar_lets_the_next_init_container_start():
    p = pod(init=[sidecar("s"), container("i2")], containers=[container("a")])
    sb = sandbox(p)
    s = record(p, "s", init=True)
    actions = compute_pod_actions(p, status(p, [sb], [s]))
    assert actions.init_containers_to_start == [1] and actions.containers_to_start == []
    # with a startup probe, the sidecar has started once the probe succeeded
    probed = pod(init=[container("s", restartPolicy="Always", startupProbe={
        "exec": {"command": ["true"]}}), container("i2")], containers=[container("a")])
    ps = record(probed, "s", init=True)
    waiting = compute_pod_actions(probed, status(probed, [sb], [ps]),
                                  startup_succeeded=frozenset())
    assert waiting.nothing
    done = compute_pod_actions(probed, status(probed, [sb], [ps]),
                               startup_succeeded={ps.id})
    assert done.init_containers_to_start == [1]
    # i2 runs: nothing to do; i2 done: the regular container starts, the sidecar runs on
    i2 = record(p, "i2", init=True, created=T0 + SECOND)
    assert compute_pod_actions(p, status(p, [sb], [s, i2])).nothing
    done = record(p, "i2", "exited", init=True, created=T0 + SECOND)
    actions = compute_pod_actions(p, status(p, [sb], [s, done]))
    assert actions.init_containers_to_start == [] and actions.containers_to_start == [0]
    assert not actions.kill_pod and not actions.containers_to_kill


def test_a_sidecar_as_last_init_container_starts_the_regular_ones_once_started():
    p = pod(init=[sidecar("s")], containers=[container("a"), container("b")])
    s = record(p, "s", init=True)
    assert compute_pod_actions(p, status(p, [sandbox(p)], [s])).containers_to_start == [0, 1]
    probed = pod(init=[container("s", restartPolicy="Always", startupProbe={
        "exec": {"command": ["true"]}})], containers=[container("a")])
    ps = record(probed, "s", init=True)
    pending = compute_pod_actions(probed, status(probed, [sandbox(probed)], [ps]),
                                  startup_succeeded=frozenset())
    assert pending.containers_to_start == []
    # a failed startup probe restarts the sidecar
    failed = compute_pod_actions(probed, status(probed, [sandbox(probed)], [ps]),
                                 startup_succeeded=frozenset(), startup_failed={ps.id})
    assert failed.containers_to_kill[ps.id].reason == "StartupProbe"
    assert failed.init_containers_to_start == [0]


@pytest.mark.parametrize("policy", ["Never", "OnFailure", "Always"])
@pytest.mark.parametrize("code", [0, 1])
def test_an_exited_sidecar_restarts_whatever_the_restart_policy(policy, code):
    p = pod(init=[sidecar("s")], containers=[container("a")], restart=policy)
    s = status(p, [sandbox(p)], [record(p, "s", "exited", exit_code=code, init=True),
                                 record(p, "a", created=T0 + SECOND)])
    actions = compute_pod_actions(p, s)
    assert actions.init_containers_to_start == [0]
    assert actions.containers_to_start == [] and not actions.kill_pod


def test_a_sidecar_failing_liveness_or_changed_is_killed_and_restarted():
    p = pod(init=[sidecar("s")], containers=[container("a")], restart="Never")
    s = record(p, "s", init=True)
    a = record(p, "a", created=T0 + SECOND)
    actions = compute_pod_actions(p, status(p, [sandbox(p)], [s, a]), liveness_failed={s.id})
    assert actions.containers_to_kill[s.id].message == "Init container s failed liveness probe"
    assert actions.init_containers_to_start == [0] and not actions.kill_pod
    changed = record(p, "s", init=True, spec_hash="0ld")
    actions = compute_pod_actions(p, status(p, [sandbox(p)], [changed, a]))
    assert actions.containers_to_kill[changed.id].message == "Init container s definition changed"
    assert actions.init_containers_to_start == [0]


def test_a_sidecar_gone_from_the_runtime_after_initialisation_is_started_again():
    p = pod(init=[container("i1"), sidecar("s")], containers=[container("a")])
    s = status(p, [sandbox(p)], [record(p, "a")])
    actions = compute_pod_actions(p, s)
    assert actions.init_containers_to_start == [1]  # the sidecar, not i1


def test_a_never_pod_whose_regular_containers_finished_is_killed_with_its_sidecars():
    p = pod(init=[sidecar("s")], containers=[container("a")], restart="Never")
    s = status(p, [sandbox(p)], [record(p, "s", init=True),
                                 record(p, "a", "exited", created=T0 + SECOND)])
    actions = compute_pod_actions(p, s)
    assert actions.kill_pod and actions.init_containers_to_start == []
    assert actions.containers_to_start == []
    # stopped: the sandbox is not created again, nor the sidecar started again
    down = status(p, [sandbox(p, ready=False)],
                  [record(p, "s", "exited", exit_code=137, init=True),
                   record(p, "a", "exited", created=T0 + SECOND)])
    actions = compute_pod_actions(p, down)
    assert not actions.create_sandbox and actions.init_containers_to_start == []
    onfailure = pod(init=[sidecar("s")], containers=[container("a")], restart="OnFailure")
    down = status(onfailure, [sandbox(onfailure, ready=False)],
                  [record(onfailure, "s", "exited", exit_code=137, init=True),
                   record(onfailure, "a", "exited", created=T0 + SECOND)])
    actions = compute_pod_actions(onfailure, down)
    assert not actions.create_sandbox and actions.init_containers_to_start == []


def test_an_exited_sidecar_is_shown_as_restarting_under_never():
    p = pod(init=[sidecar("s")], containers=[container("a")], restart="Never")
    s = status(p, [sandbox(p)], [record(p, "s", "exited", exit_code=1, init=True)])
    assert should_restart(pods.init_containers(p)[0], p, s)
    plain = pod(init=[container("s")], restart="Never")
    s = status(plain, [sandbox(plain)], [record(plain, "s", "exited", exit_code=1, init=True)])
    assert not should_restart(pods.init_containers(plain)[0], plain, s)
