"""Deployment arithmetic, step by step: fenceposts, rollouts, revisions, progress, rollback."""
import copy
import datetime
import itertools

import pytest

from pyk8s.controllers import deployment as dep
from pyk8s.controllers import deployment_util as du
from pyk8s.controllers import hashing

from .builders import at, deployment, ts, uid

NAMES = itertools.count()


class World:
    """The API plus a ReplicaSet controller: pods become available one sync after creation."""

    def __init__(self, d):
        self.d = d
        self.rss: dict[str, dict] = {}
        self.events: list[tuple] = []
        self.t = 0.0
        self.created: dict[str, int] = {}   # pods each RS had at the previous step

    def now(self):
        return at(self.t)

    def sync(self, pod_map=None):
        plan = dep.plan_sync(self.d, list(self.rss.values()), pod_map or {}, self.now())
        for a in plan.actions:
            if a.verb == dep.EVENT:
                self.events.append(a.event)
            elif a.resource == dep.RS:
                self.apply_rs(a)
            elif a.verb == dep.UPDATE_STATUS:
                self.d["status"] = a.obj["status"]
                self.d["metadata"]["annotations"] = a.obj["metadata"].get("annotations") or {}
            elif a.verb == dep.UPDATE:
                self.d = copy.deepcopy(a.obj)
        self.run_rs_controller()
        self.t += 1
        return plan

    def apply_rs(self, a):
        obj = copy.deepcopy(a.obj)
        name = obj["metadata"]["name"]
        if a.verb == dep.CREATE:
            obj["metadata"].update(uid=uid(), generation=1, creationTimestamp=ts(self.now()))
            obj["metadata"]["creationTimestamp"] = ts(at(next(NAMES)))
            obj["status"] = {}
            self.rss[name] = obj
        elif a.verb == dep.UPDATE:
            old = self.rss[name]
            if obj["spec"] != old["spec"]:
                obj["metadata"]["generation"] = old["metadata"]["generation"] + 1
            obj["status"] = old["status"]
            self.rss[name] = obj
        elif a.verb == dep.DELETE:
            del self.rss[name]

    def run_rs_controller(self):
        for name, rs in self.rss.items():
            want = rs["spec"]["replicas"]
            before = self.created.get(name, 0)
            available = min(want, before)
            rs["status"] = {"replicas": want, "readyReplicas": available, "availableReplicas": available,
                            "observedGeneration": rs["metadata"]["generation"]}
            self.created[name] = want

    def settle_old(self):
        """Old pods have been running for a long time."""
        for name, rs in self.rss.items():
            self.created[name] = rs["spec"]["replicas"]
        self.run_rs_controller()

    def sizes(self):
        by_rev = sorted(self.rss.values(), key=lambda rs: du.revision(rs), reverse=True)
        return tuple(rs["spec"]["replicas"] for rs in by_rev)

    def new_template(self, image):
        self.d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        self.d["metadata"]["generation"] += 1


def rollout(world, steps=30):
    seq = []
    for _ in range(steps):
        world.sync()
        if not seq or seq[-1] != world.sizes():
            seq.append(world.sizes())
    return seq


@pytest.mark.parametrize("surge,unavailable,replicas,expected", [
    ("25%", "25%", 4, (1, 1)), ("25%", "25%", 10, (3, 2)), (0, 0, 5, (0, 1)),
    ("50%", 0, 3, (2, 0)), (3, 2, 10, (3, 2)), ("10%", "10%", 1, (1, 0)),
])
def test_fenceposts_round_surge_up_and_unavailable_down(surge, unavailable, replicas, expected):
    d = deployment(replicas=replicas, max_surge=surge, max_unavailable=unavailable)
    assert (du.max_surge(d), du.max_unavailable(d)) == expected


def test_first_rollout_creates_the_new_replica_set_at_full_size():
    world = World(deployment(replicas=3))
    plan = world.sync()
    created = [a.obj for a in plan.actions if a.verb == dep.CREATE]
    assert len(created) == 1
    rs = created[0]
    h = hashing.compute_hash(world.d["spec"]["template"], None)
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == h
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
    assert rs["spec"]["replicas"] == 3
    assert du.annotations(rs)[du.REVISION] == "1"
    assert du.annotations(rs)[du.DESIRED_REPLICAS] == "3"
    assert du.annotations(rs)[du.MAX_REPLICAS] == "4"
    assert ("Normal", "ScalingReplicaSet", f"Scaled up replica set web-{h} from 0 to 3") in world.events
    assert du.annotations(world.d)[du.REVISION] == "1"
    progressing = du.get_condition(world.d["status"], "Progressing")
    assert progressing["reason"] == "NewReplicaSetCreated"
    assert progressing["message"] == f'Created new replica set "web-{h}"'


def test_rolling_update_sequence_honours_surge_and_unavailability():
    world = World(deployment(replicas=4))          # 25% / 25% -> surge 1, unavailable 1
    world.sync()
    world.settle_old()
    world.sync()
    world.new_template("nginx:1.25")
    seq = rollout(world)
    assert seq == [(1, 3), (2, 3), (2, 2), (3, 2), (3, 1), (4, 1), (4, 0)]
    d = world.d
    assert d["status"]["updatedReplicas"] == 4 and d["status"]["availableReplicas"] == 4
    progressing = du.get_condition(d["status"], "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"
    assert progressing["message"].endswith("has successfully progressed.")
    scaled = [e[2] for e in world.events if e[1] == "ScalingReplicaSet"]
    assert any(m.startswith("Scaled down replica set web-") and m.endswith("from 4 to 3") for m in scaled)


@pytest.mark.parametrize("replicas,surge,unavailable", [(10, 3, 2), (10, "25%", "25%"), (5, 0, 1),
                                                         (7, "50%", "10%")])
def test_rollout_invariants(replicas, surge, unavailable):
    world = World(deployment(replicas=replicas, max_surge=surge, max_unavailable=unavailable))
    world.sync()
    world.settle_old()
    world.new_template("nginx:1.25")
    max_total = replicas + du.max_surge(world.d)
    min_available = replicas - du.max_unavailable(world.d)
    for _ in range(60):
        world.sync()
        assert du.replica_count(world.rss.values()) <= max_total
        assert du.available_replica_count(world.rss.values()) >= min_available
    assert world.sizes() == (replicas, 0)


def test_recreate_scales_old_to_zero_and_waits_for_pods_to_go():
    world = World(deployment(replicas=2, strategy="Recreate"))
    world.sync()
    world.settle_old()
    old = next(iter(world.rss.values()))
    world.new_template("nginx:1.25")
    world.sync()
    assert world.sizes() == (0,)              # no new RS before the old pods are gone
    old_pod = {"status": {"phase": "Running"}}
    plan = dep.plan_sync(world.d, list(world.rss.values()), {old["metadata"]["uid"]: [old_pod]}, world.now())
    assert not [a for a in plan.actions if a.verb == dep.CREATE]
    world.sync()
    assert world.sizes() == (2, 0)


def test_revisions_rollback_keeps_history_and_change_cause():
    world = World(deployment(replicas=1))
    world.d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "image nginx:1.24"}
    rollout(world, 3)
    world.new_template("nginx:1.25")
    world.d["metadata"]["annotations"]["kubernetes.io/change-cause"] = "image nginx:1.25"
    rollout(world, 6)
    revs = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: du.annotations(rs)
            for rs in world.rss.values()}
    assert revs["nginx:1.24"][du.REVISION] == "1"
    assert revs["nginx:1.25"][du.REVISION] == "2"
    assert revs["nginx:1.25"]["kubernetes.io/change-cause"] == "image nginx:1.25"
    # kubectl rollout undo: the template and annotations of revision 1 come back.
    world.new_template("nginx:1.24")
    world.d["metadata"]["annotations"]["kubernetes.io/change-cause"] = "image nginx:1.24"
    rollout(world, 6)
    ann = next(du.annotations(rs) for rs in world.rss.values()
               if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.24")
    assert ann[du.REVISION] == "3" and ann[du.REVISION_HISTORY] == "1"
    assert du.annotations(world.d)[du.REVISION] == "3"
    assert world.sizes() == (1, 0)


def test_rollback_annotation_copies_the_old_template():
    world = World(deployment(replicas=1))
    rollout(world, 3)
    world.new_template("nginx:1.25")
    rollout(world, 6)
    world.d["metadata"].setdefault("annotations", {})[du.ROLLBACK_TO] = "1"
    plan = world.sync()
    updates = [a.obj for a in plan.actions if a.verb == dep.UPDATE and a.resource == dep.DEPLOYMENT]
    assert updates[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.24"
    assert du.ROLLBACK_TO not in du.annotations(updates[0])
    assert ("Normal", "DeploymentRollback", 'Rolled back deployment "web" to revision 1') in world.events


def test_history_limit_deletes_oldest_scaled_down_replica_sets():
    world = World(deployment(replicas=1, history_limit=1))
    for image in ("a", "b", "c"):
        world.new_template(image)
        rollout(world, 8)
    images = sorted(rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in world.rss.values())
    assert images == ["b", "c"]


def test_pause_blocks_new_replica_sets_and_sets_condition():
    world = World(deployment(replicas=2))
    rollout(world, 3)
    world.d["spec"]["paused"] = True
    world.new_template("nginx:1.25")
    world.sync()
    assert len(world.rss) == 1
    cond = du.get_condition(world.d["status"], "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == ("Unknown", "DeploymentPaused",
                                                                 "Deployment is paused")
    world.d["spec"]["paused"] = False
    world.sync()
    assert len(world.rss) == 2
    assert du.get_condition(world.d["status"], "Progressing")["reason"] in (
        "DeploymentResumed", "NewReplicaSetCreated", "ReplicaSetUpdated")


def test_progress_deadline_exceeded():
    world = World(deployment(replicas=1, progress_deadline=30))
    world.sync()
    # The pod never becomes available.
    world.run_rs_controller = lambda: None
    for rs in world.rss.values():
        rs["status"] = {"replicas": 1, "observedGeneration": 1}
    world.sync()
    plan = dep.plan_sync(world.d, list(world.rss.values()), {}, world.now())
    assert plan.requeue_after is not None and plan.requeue_after > 25
    world.t += 40
    world.sync()
    cond = du.get_condition(world.d["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"].endswith("has timed out progressing.")
    avail = du.get_condition(world.d["status"], "Available")
    assert (avail["status"], avail["reason"]) == ("False", "MinimumReplicasUnavailable")


def test_proportional_scaling_during_a_rollout():
    world = World(deployment(replicas=10, max_surge=3, max_unavailable=2))
    rollout(world, 3)
    world.settle_old()
    world.new_template("nginx:1.25")
    world.run_rs_controller = lambda: None    # freeze: new pods never get ready
    world.sync()
    for rs in world.rss.values():
        rs["status"] = {"replicas": rs["spec"]["replicas"],
                        "availableReplicas": rs["spec"]["replicas"] if du.revision(rs) == 1 else 0}
    before = world.sizes()
    world.d["spec"]["replicas"] = 20
    world.sync()
    after = world.sizes()
    assert sum(after) == 20 + 3
    assert after[0] > before[0] and after[1] > before[1]
    assert any(e[2].startswith("Scaled up replica set") for e in world.events[-2:])


def test_status_available_condition_and_steady_state_writes_nothing():
    world = World(deployment(replicas=2))
    rollout(world, 4)
    avail = du.get_condition(world.d["status"], "Available")
    assert (avail["status"], avail["reason"], avail["message"]) == (
        "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    plan = dep.plan_sync(world.d, list(world.rss.values()), {}, world.now() + datetime.timedelta(hours=1))
    assert plan.actions == []
