"""Job arithmetic and passes: back-off, failure policy, indexes, tracking, conditions."""
import copy
import datetime
import itertools

import pytest

from pyk8s.controllers import job as jc
from pyk8s.controllers import jobutil as ju

from .builders import at, template, ts, uid

SUFFIX = itertools.count()


def job(**spec):
    base = {"parallelism": 1, "completions": 1, "backoffLimit": 6, "template": template(),
            "completionMode": "NonIndexed", "suspend": False}
    base["template"]["spec"]["restartPolicy"] = "Never"
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": uid(), "generation": 1},
            "spec": base, "status": {}}


class World:
    def __init__(self, j):
        self.job = j
        self.pods: dict[str, dict] = {}
        self.events: list[tuple] = []
        self.t = 0.0
        self.backoff = ju.BackoffRecord()
        self.requeue = None

    def now(self):
        return at(self.t)

    def sync(self):
        plan = jc.plan_sync(self.job, list(self.pods.values()), self.now(), backoff=self.backoff)
        self.requeue = plan.requeue_after
        for a in plan.actions:
            if a.verb == "create_pods":
                for p in a.pods:
                    p = copy.deepcopy(p)
                    p["metadata"]["name"] = p["metadata"]["generateName"] + f"{next(SUFFIX):05d}"
                    p["metadata"].update(uid=uid(), creationTimestamp=ts(self.now()),
                                         namespace=self.job["metadata"]["namespace"])
                    p["status"] = {"phase": "Pending"}
                    self.pods[p["metadata"]["name"]] = p
            elif a.verb == "delete_pods":
                for p in a.pods:
                    live = self.pods[p["metadata"]["name"]]
                    if a.remove_finalizer:
                        live["metadata"]["finalizers"] = []
                    self.delete(live)
            elif a.verb == "remove_finalizers":
                for p in a.pods:
                    live = self.pods.get(p["metadata"]["name"])
                    if live is not None:
                        live["metadata"]["finalizers"] = [f for f in live["metadata"].get("finalizers", [])
                                                          if f != ju.JOB_TRACKING_FINALIZER]
                        if live["metadata"].get("deletionTimestamp") and not live["metadata"]["finalizers"]:
                            del self.pods[live["metadata"]["name"]]
            elif a.verb == "update_status":
                self.job["status"] = copy.deepcopy(a.job["status"])
                if a.saves_backoff:
                    self.backoff = plan.backoff
            elif a.verb == "event":
                self.events.append(a.event)
        if not any(a.saves_backoff for a in plan.actions):
            self.backoff = plan.backoff
        return plan

    def delete(self, pod):
        if pod["metadata"].get("finalizers"):
            pod["metadata"]["deletionTimestamp"] = ts(self.now())
        else:
            del self.pods[pod["metadata"]["name"]]

    def finish(self, name=None, phase="Succeeded", exit_code=0):
        pods = [p for p in self.pods.values() if ju.has_tracking_finalizer(p)
                and p["status"]["phase"] not in ("Succeeded", "Failed")]
        pod = self.pods[name] if name else pods[0]
        pod["status"] = {"phase": phase, "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": ts(self.now())}],
            "containerStatuses": [{"name": "c", "state": {"terminated": {
                "exitCode": exit_code, "finishedAt": ts(self.now())}}}]}
        return pod

    def cond(self, ctype):
        return ju.find_condition(self.job, ctype)


def test_back_off_doubles_from_ten_seconds_to_six_minutes():
    last = at(0)
    delays = [ju.remaining_backoff(n, last, last) for n in range(1, 9)]
    assert delays == [10, 20, 40, 80, 160, 320, 360, 360]
    assert ju.remaining_backoff(3, last, at(15)) == 25
    assert ju.remaining_backoff(1, last, at(30)) == 0
    assert ju.remaining_backoff(0, None, at(0)) == 0


def test_pods_are_created_with_the_tracking_finalizer_and_complete_the_job():
    w = World(job(completions=2, parallelism=2))
    w.sync()
    assert len(w.pods) == 2
    p = next(iter(w.pods.values()))
    assert ju.JOB_TRACKING_FINALIZER in p["metadata"]["finalizers"]
    assert p["metadata"]["generateName"] == "pi-"
    assert p["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert w.job["status"]["active"] == 2 and w.job["status"]["startTime"]
    w.finish()
    plan = w.sync()
    verbs = [a.verb for a in plan.actions]
    assert verbs == ["update_status", "remove_finalizers", "update_status"]
    assert plan.actions[0].job["status"]["uncountedTerminatedPods"]["succeeded"]   # counted once
    assert w.job["status"]["succeeded"] == 1 and w.job["status"]["uncountedTerminatedPods"] == {}
    w.finish()
    w.sync()
    assert w.job["status"]["succeeded"] == 2
    met, complete = w.cond("SuccessCriteriaMet"), w.cond("Complete")
    assert met["reason"] == complete["reason"] == "CompletionsReached"
    assert complete["status"] == "True" and w.job["status"]["completionTime"]
    assert ("Normal", "Completed", "Job completed") in w.events
    assert jc.plan_sync(w.job, list(w.pods.values()), w.now()).finished


def test_failures_back_off_then_exceed_the_limit():
    w = World(job(backoffLimit=2))
    w.sync()
    for attempt, wait in enumerate([10, 20]):
        w.finish(phase="Failed", exit_code=1)
        w.sync()
        assert w.job["status"]["failed"] == attempt + 1
        assert w.requeue == wait                     # no replacement before the back-off
        assert w.job["status"].get("active", 0) == 0
        w.t += wait
        w.sync()
        assert w.job["status"]["active"] == 1
    w.finish(phase="Failed", exit_code=1)
    w.sync()
    target, failed = w.cond("FailureTarget"), w.cond("Failed")
    assert target["reason"] == failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") in w.events


def test_active_deadline_fails_the_job_and_removes_pods():
    w = World(job(activeDeadlineSeconds=30, parallelism=2, completions=4))
    w.sync()
    assert w.requeue == 30
    w.t = 31
    w.sync()                                          # FailureTarget, pods deleted
    assert w.cond("FailureTarget")["reason"] == "DeadlineExceeded"
    assert all(p["metadata"].get("deletionTimestamp") for p in w.pods.values())
    w.sync()
    assert not w.pods
    failed = w.cond("Failed")
    assert failed["message"] == "Job was active longer than specified deadline"
    assert w.job["status"]["failed"] == 2


def test_pod_failure_policy_fail_job_and_ignore():
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
                        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
    w = World(job(podFailurePolicy=policy))
    w.sync()
    pod = w.finish(phase="Failed", exit_code=42)
    w.sync()
    w.sync()
    msg = (f"Container c for pod default/{pod['metadata']['name']} failed with exit code 42 "
           "matching FailJob rule at index 0")
    assert w.cond("Failed")["reason"] == "PodFailurePolicy" and w.cond("Failed")["message"] == msg
    ignored = {"metadata": {"name": "p", "namespace": "default"},
               "status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}]}}
    assert ju.match_pod_failure_policy(policy, ignored) == (None, False, "Ignore")


def test_indexed_job_pods_carry_index_env_and_hostname():
    w = World(job(completionMode="Indexed", completions=3, parallelism=2))
    w.sync()
    pods = sorted(w.pods.values(), key=ju.completion_index)
    assert [ju.completion_index(p) for p in pods] == [0, 1]
    p0 = pods[0]
    assert p0["metadata"]["generateName"] == "pi-0-"
    assert p0["spec"]["hostname"] == "pi-0"
    assert p0["metadata"]["labels"][ju.COMPLETION_INDEX] == "0"
    env = p0["spec"]["containers"][0]["env"][0]
    assert env == {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']"}}}
    w.finish(p0["metadata"]["name"])
    w.sync()
    assert w.job["status"]["completedIndexes"] == "0"
    assert sorted(ju.completion_index(p) for p in w.pods.values() if ju.has_tracking_finalizer(p)) == [1, 2]


@pytest.mark.parametrize("indexes,text", [([0, 1, 2, 4], "0-2,4"), ([3, 4], "3,4"), ([], ""),
                                          ([1, 5, 6, 7, 9], "1,5-7,9")])
def test_completed_indexes_format(indexes, text):
    intervals = ju.with_indexes([], indexes)
    assert ju.format_indexes(intervals) == text
    assert ju.parse_indexes(text, 100) == intervals


def test_first_pending_indexes_skip_active_and_succeeded():
    active = [{"metadata": {"annotations": {ju.COMPLETION_INDEX: "1"}}}]
    got = ju.first_pending_indexes(active=active, terminating=[], succeeded=[(0, 0), (3, 3)],
                                   failed=None, count=3, completions=6)
    assert got == [2, 4, 5]


def test_suspend_deletes_pods_and_sets_condition():
    w = World(job(parallelism=2, completions=2))
    w.sync()
    w.job["spec"]["suspend"] = True
    w.sync()
    assert not w.pods
    cond = w.cond("Suspended")
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "JobSuspended", "Job suspended")
    assert ("Normal", "Suspended", "Job suspended") in w.events
    w.job["spec"]["suspend"] = False
    w.sync()
    assert len(w.pods) == 2 and w.cond("Suspended")["status"] == "False"


def test_ttl_after_finished():
    j = job(ttlSecondsAfterFinished=100)
    assert ju.ttl_expire_at(j) is None
    j["status"]["conditions"] = [ju.new_condition("Complete", "True", "", "", at(50))]
    assert ju.ttl_expire_at(j) == at(150)


def test_success_policy_matches_indexes():
    policy = {"rules": [{"succeededIndexes": "0-2", "succeededCount": 2}]}
    assert ju.match_success_policy(policy, 5, [(0, 0), (2, 2)]) == ("Matched rules at index 0", True)
    assert ju.match_success_policy(policy, 5, [(4, 4)]) == ("", False)


def test_new_backoff_record_counts_failures_after_last_success():
    def finished(t, phase):
        return {"metadata": {"name": "p", "creationTimestamp": ts(at(0))},
                "status": {"phase": phase, "conditions": [
                    {"type": "Ready", "status": "False", "lastTransitionTime": ts(at(t))}]}}
    rec = ju.new_backoff_record(ju.BackoffRecord(), [], [finished(5, "Failed"), finished(9, "Failed")])
    assert rec == ju.BackoffRecord(2, at(9))
    rec = ju.new_backoff_record(rec, [finished(10, "Succeeded")], [finished(12, "Failed")])
    assert rec == ju.BackoffRecord(1, at(12))
    assert ju.new_backoff_record(rec, [finished(20, "Succeeded")], []) == ju.BackoffRecord()
    assert isinstance(rec.last_failure_time, datetime.datetime)
