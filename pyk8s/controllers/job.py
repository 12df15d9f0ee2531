"""Job decisions: one ``syncJob`` pass as pod creations/deletions and status writes.

Role: the pure half of upstream's ``pkg/controller/job/job_controller.go``
(``syncJob``, ``manageJob``, ``trackJobStatusAndRemoveFinalizers``). ``plan_sync``
returns, in order, what the pass does: delete pods, create pods (each with the
``batch.kubernetes.io/job-tracking`` finalizer, and for Indexed Jobs the
completion-index annotation and label, ``JOB_COMPLETION_INDEX`` and hostname
``<job>-<index>``), write the status with newly finished pods in
``uncountedTerminatedPods``, remove their finalizers, then write the status again
with them counted and, when the Job is done, the Complete or Failed condition.
``job_controller`` executes the plan and stops at the first failure; the next pass
picks up from what the API then shows (every step is idempotent).

Invariants:
- A finished pod is counted exactly once: it stays in ``uncountedTerminatedPods``
  until its finalizer is gone, and only pods that still carry the finalizer are new.
- Failure is declared with FailureTarget first and Failed only once no pod is
  terminating or uncounted; success with SuccessCriteriaMet first, then Complete
  (reason CompletionsReached unless a successPolicy matched), as upstream 1.32.
- New pods wait out the back-off (10 s doubling to 6 min per failure since the last
  success); suspended Jobs have no pods and a Suspended=True condition.
"""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field

from . import jobutil as ju
from . import podutil

MAX_UNCOUNTED_PODS = 500
MAX_POD_CREATE_DELETE_PER_SYNC = 500


@dataclass
class JobAction:
    """``delete_pods`` (with ``remove_finalizer`` first), ``create_pods``, ``update_status``,
    ``remove_finalizers`` or ``event``."""

    verb: str
    pods: list[dict] = field(default_factory=list)
    job: dict | None = None
    remove_finalizer: bool = False
    expect: bool = False          # set controller expectations for these pods first
    saves_backoff: bool = False   # a successful write commits ``JobPlan.backoff``
    event: tuple[str, str, str] | None = None


@dataclass
class JobPlan:
    actions: list[JobAction] = field(default_factory=list)
    backoff: ju.BackoffRecord = ju.BackoffRecord()
    finished: bool = False        # nothing to do: the Job had already finished
    requeue_after: float | None = None


def _failure_condition(reason: str, message: str, now) -> dict:
    return ju.new_condition(ju.FAILURE_TARGET, "True", reason, message, now)


def _success_condition(now) -> dict:
    return ju.new_condition(ju.SUCCESS_CRITERIA_MET, "True", ju.REASON_COMPLETIONS_REACHED,
                            "Reached expected number of succeeded pods", now)


def _past_backoff_limit_on_failure(job: dict, pods: list[dict]) -> bool:
    template_spec = (job["spec"].get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in pods:
        if podutil.phase(pod) in ("Running", "Pending"):
            status = pod.get("status") or {}
            for key in ("initContainerStatuses", "containerStatuses"):
                restarts += sum(int(s.get("restartCount") or 0) for s in status.get(key) or [])
    limit = int(job["spec"].get("backoffLimit") or 0)
    return restarts > 0 if limit == 0 else restarts >= limit


def _absolute_failures(pod: dict) -> int:
    return ju.index_failure_count(pod) + ju.index_failure_count(pod, ju.INDEX_IGNORED_FAILURE_COUNT)


class _Sync:
    def __init__(self, job, pods, now, satisfied, expected_rm, backoff):
        self.job = copy.deepcopy(job)
        self.pods = pods
        self.now = now
        self.satisfied = satisfied
        self.expected_rm = expected_rm
        self.plan = JobPlan(backoff=backoff)
        self.status = self.job.setdefault("status", {})

    def _act(self, verb: str, **kw) -> None:
        self.plan.actions.append(JobAction(verb, **kw))

    def _event(self, etype: str, reason: str, message: str) -> None:
        self._act("event", job=self.job, event=(etype, reason, message))

    def _write_status(self, saves_backoff: bool = False) -> None:
        job = copy.deepcopy(self.job)
        job["status"] = clean_status(job["status"])
        self._act("update_status", job=job, saves_backoff=saves_backoff)

    # -- main --------------------------------------------------------------------------

    def run(self) -> JobPlan:
        job, status, now = self.job, self.status, self.now
        if ju.is_job_finished(job):
            self.plan.finished = True
            return self.plan
        mode = job["spec"].get("completionMode")
        if mode not in (None, "NonIndexed", "Indexed"):
            self._event("Warning", "UnknownCompletionMode",
                        "Skipped Job sync because completion mode is unknown")
            return self.plan
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        self.unc_succeeded = set(uncounted.get("succeeded") or [])
        self.unc_failed = set(uncounted.get("failed") or [])
        self.active_pods = podutil.filter_active_pods(self.pods)
        self.ready = sum(1 for p in self.active_pods if podutil.is_pod_ready(p))
        self.terminating = podutil.count_terminating_pods(self.pods)
        active = len(self.active_pods)
        new_succeeded = self.valid_pods(self.unc_succeeded, lambda p: podutil.phase(p) == "Succeeded")
        new_failed = self.valid_pods(self.unc_failed, lambda p: ju.is_pod_failed(p, job))
        policy = job["spec"].get("podFailurePolicy")
        counted_failed = sum(1 for p in new_failed if ju.match_pod_failure_policy(policy, p)[1])
        self.succeeded = int(status.get("succeeded") or 0) + len(new_succeeded) + len(self.unc_succeeded)
        self.failed = int(status.get("failed") or 0) + counted_failed + len(self.unc_failed)
        if status.get("startTime") is None and not ju.is_suspended(job):
            status["startTime"] = podutil.format_ts(now)
        self.plan.backoff = ju.new_backoff_record(self.plan.backoff, new_succeeded, new_failed)
        self.finished = self.initial_finished_condition()
        self.prev_succeeded_ix = self.succeeded_ix = []
        self.failed_ix = None
        self.delayed: dict[int, dict] = {}
        if ju.is_indexed(job):
            self.indexed_conditions()
        suspend_changed = False
        if self.finished is not None:
            deletable = list(self.active_pods)
            if deletable:
                self._act("delete_pods", pods=deletable)
            deleted_ready = sum(1 for p in deletable if podutil.is_pod_ready(p))
            if not self.satisfied:
                self.finished = None
            active -= len(deletable)
            self.terminating += len(deletable)
            self.ready -= deleted_ready
        else:
            manage_called = False
            if self.satisfied and not job["metadata"].get("deletionTimestamp"):
                active = self.manage_job()
                manage_called = True
            completions = job["spec"].get("completions")
            if completions is None:
                complete = self.succeeded > 0 and active == 0
            else:
                complete = self.succeeded >= int(completions) and active == 0
            if complete:
                self.finished = _success_condition(now)
            elif manage_called:
                suspend_changed = self.suspend_condition()
        needs = (suspend_changed or active != int(status.get("active") or 0)
                 or self.ready != status.get("ready") or self.terminating != status.get("terminating"))
        status["active"] = active
        status["ready"] = self.ready
        status["terminating"] = self.terminating
        self.track(needs)
        return self.plan

    def valid_pods(self, uncounted: set[str], keep) -> list[dict]:
        """``getValidPodsWithFilter``: finalizer-carrying, not yet counted, valid index."""
        out = []
        completions = self.job["spec"].get("completions")
        for pod in self.pods:
            uid = pod["metadata"].get("uid")
            if not ju.has_tracking_finalizer(pod) or uid in uncounted or uid in self.expected_rm:
                continue
            if ju.is_indexed(self.job):
                ix = ju.completion_index(pod)
                if ix == ju.UNKNOWN_INDEX or ix >= int(completions):
                    continue
            if keep(pod):
                out.append(pod)
        return out

    def initial_finished_condition(self) -> dict | None:
        job, now = self.job, self.now
        met = ju.find_condition(job, ju.SUCCESS_CRITERIA_MET)
        if met is not None and met.get("status") == "True":
            return met
        target = ju.find_condition(job, ju.FAILURE_TARGET)
        if target is not None and target.get("status") == "True":
            return ju.new_condition(ju.FAILED, "True", target.get("reason", ""),
                                    target.get("message", ""), now)
        policy = job["spec"].get("podFailurePolicy")
        if policy is not None:
            for pod in self.pods:
                if ju.is_pod_failed(pod, job):
                    message = ju.match_pod_failure_policy(policy, pod)[0]
                    if message is not None:
                        return _failure_condition(ju.REASON_POD_FAILURE_POLICY, message, now)
        if self.failed > int(job["spec"].get("backoffLimit") or 0) or \
                _past_backoff_limit_on_failure(job, self.pods):
            return _failure_condition(ju.REASON_BACKOFF_LIMIT_EXCEEDED,
                                      "Job has reached the specified backoff limit", now)
        deadline = job["spec"].get("activeDeadlineSeconds")
        started = podutil.parse_ts(self.status.get("startTime"))
        if deadline is not None and started is not None and not ju.is_suspended(job):
            remaining = int(deadline) - (now - started).total_seconds()
            if remaining <= 0:
                return _failure_condition(ju.REASON_DEADLINE_EXCEEDED,
                                          "Job was active longer than specified deadline", now)
            self.requeue(remaining)
        return None

    def requeue(self, after: float) -> None:
        if self.plan.requeue_after is None or after < self.plan.requeue_after:
            self.plan.requeue_after = after

    def indexed_conditions(self) -> None:
        job, now = self.job, self.now
        completions = int(job["spec"]["completions"])
        self.prev_succeeded_ix = ju.parse_indexes(self.status.get("completedIndexes"), completions)
        new = {ju.completion_index(p) for p in self.pods
               if podutil.phase(p) == "Succeeded" and ju.has_tracking_finalizer(p)
               and ju.UNKNOWN_INDEX != ju.completion_index(p) < completions}
        self.succeeded_ix = ju.with_indexes(self.prev_succeeded_ix, new)
        self.succeeded = ju.intervals_total(self.succeeded_ix)
        if ju.has_backoff_limit_per_index(job):
            self.failed_ix = self.calculate_failed_indexes(completions)
            total_failed = ju.intervals_total(self.failed_ix)
            max_failed = job["spec"].get("maxFailedIndexes")
            if self.finished is None:
                if max_failed is not None and total_failed > int(max_failed):
                    self.finished = _failure_condition(
                        ju.REASON_MAX_FAILED_INDEXES_EXCEEDED,
                        "Job has exceeded the specified maximal number of failed indexes", now)
                elif total_failed > 0 and total_failed + self.succeeded >= completions:
                    self.finished = _failure_condition(ju.REASON_FAILED_INDEXES,
                                                       "Job has failed indexes", now)
            self.delayed = self.pods_with_delayed_deletion(completions)
        if self.finished is None:
            message, met = ju.match_success_policy(job["spec"].get("successPolicy"), completions,
                                                   self.succeeded_ix)
            if met:
                self.finished = ju.new_condition(ju.SUCCESS_CRITERIA_MET, "True",
                                                 ju.REASON_SUCCESS_POLICY, message, now)

    def calculate_failed_indexes(self, completions: int) -> ju.Intervals:
        job = self.job
        prev = ju.parse_indexes(self.status.get("failedIndexes"), completions)
        limit = int(job["spec"]["backoffLimitPerIndex"])
        policy = job["spec"].get("podFailurePolicy")
        new = set()
        for pod in self.pods:
            ix = ju.completion_index(pod)
            if ix == ju.UNKNOWN_INDEX or ix >= completions or not ju.has_tracking_finalizer(pod):
                continue
            if not ju.is_pod_failed(pod, job):
                continue
            _, counted, action = ju.match_pod_failure_policy(policy, pod)
            if action == "FailIndex" or (counted and ju.index_failure_count(pod) >= limit):
                new.add(ix)
        return ju.with_indexes(prev, new)

    def pods_with_delayed_deletion(self, completions: int) -> dict[int, dict]:
        """The last failed pod of each pending index, kept until its replacement exists."""
        active = {ju.completion_index(p) for p in self.active_pods}
        out: dict[int, dict] = {}
        for pod in self.valid_pods(set(), lambda p: ju.is_pod_failed(p, self.job)):
            ix = ju.completion_index(pod)
            if (ju.intervals_has(self.succeeded_ix, ix) or ju.intervals_has(self.failed_ix or [], ix)
                    or ix in active):
                continue
            last = out.get(ix)
            if last is None or (_absolute_failures(last) <= _absolute_failures(pod)
                                and not ju.finished_time(pod) < ju.finished_time(last)):
                out[ix] = pod
        return out

    def suspend_condition(self) -> bool:
        conds = self.status.get("conditions") or []
        if ju.is_suspended(self.job):
            conds, changed = ju.ensure_condition(conds, ju.SUSPENDED, "True", "JobSuspended",
                                                 "Job suspended", self.now)
            if changed:
                self._event("Normal", "Suspended", "Job suspended")
        else:
            conds, changed = ju.ensure_condition(conds, ju.SUSPENDED, "False", "JobResumed",
                                                 "Job resumed", self.now)
            if changed:
                self._event("Normal", "Resumed", "Job resumed")
                self.status["startTime"] = podutil.format_ts(self.now)
        if conds:
            self.status["conditions"] = conds
        return changed

    # -- manageJob -----------------------------------------------------------------------

    def pods_for_removal(self, rm_at_least: int) -> list[dict]:
        job = self.job
        if ju.is_indexed(job):
            rm, left = ju.duplicated_index_pods_for_removal(self.active_pods, int(job["spec"]["completions"]))
        else:
            rm, left = [], self.active_pods
        if len(rm) < rm_at_least:
            rm = rm + podutil.sort_active_pods(left)[:rm_at_least - len(rm)]
        return rm

    def delete_job_pods(self, pods: list[dict]) -> int:
        self._act("delete_pods", pods=pods, remove_finalizer=True, expect=True)
        self.terminating += len(pods)
        self.ready -= sum(1 for p in pods if podutil.is_pod_ready(p))
        return len(pods)

    def manage_job(self) -> int:
        job = self.job
        active = len(self.active_pods)
        if ju.is_suspended(job):
            return active - self.delete_job_pods(self.pods_for_removal(active))
        parallelism = int(job["spec"].get("parallelism") if job["spec"].get("parallelism") is not None else 1)
        completions = job["spec"].get("completions")
        if completions is None:
            want = active if self.succeeded > 0 else parallelism
        else:
            want = max(min(int(completions) - self.succeeded, parallelism), 0)
        to_delete = self.pods_for_removal(max(active - want, 0))[:MAX_POD_CREATE_DELETE_PER_SYNC]
        if to_delete:
            return active - self.delete_job_pods(to_delete)
        terminating = self.terminating if ju.only_replace_failed_pods(job) else 0
        diff = want - terminating - active
        if diff <= 0:
            return active
        if not ju.has_backoff_limit_per_index(job):
            remaining = ju.remaining_backoff(self.plan.backoff.failures_after_last_success,
                                             self.plan.backoff.last_failure_time, self.now)
            if remaining > 0:
                # Upstream reports active=0 here; the pods that do run stay counted.
                self.requeue(remaining)
                return active
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: list[int] = []
        if ju.is_indexed(job):
            indexes = ju.first_pending_indexes(
                active=self.active_pods,
                terminating=[p for p in self.pods if podutil.is_pod_terminating(p)]
                if ju.only_replace_failed_pods(job) else [],
                succeeded=self.succeeded_ix, failed=self.failed_ix, count=diff,
                completions=int(completions))
            if ju.has_backoff_limit_per_index(job):
                ready_now, waits = [], []
                for ix in indexes:
                    last = self.delayed.get(ix)
                    wait = 0.0 if last is None else ju.remaining_backoff(
                        _absolute_failures(last) + 1, ju.finished_time(last), self.now)
                    (ready_now if wait == 0 else waits).append((ix, wait))
                if not ready_now and waits:
                    self.requeue(min(w for _, w in waits))
                    return active
                indexes = [ix for ix, _ in ready_now]
            diff = len(indexes)
        if diff:
            self._act("create_pods", pods=self.pod_templates(diff, indexes), expect=True)
        return active + diff

    def pod_templates(self, count: int, indexes: list[int]) -> list[dict]:
        job = self.job
        template = copy.deepcopy(job["spec"]["template"])
        if ju.is_indexed(job):
            ju.add_completion_index_env(template)
        meta = template.setdefault("metadata", {})
        if ju.JOB_TRACKING_FINALIZER not in (meta.get("finalizers") or []):
            meta["finalizers"] = list(meta.get("finalizers") or []) + [ju.JOB_TRACKING_FINALIZER]
        ref = podutil.new_controller_ref(job, "batch/v1", "Job")
        pods = []
        for i in range(count):
            pod = podutil.pod_from_template(template, job, ref)
            if indexes:
                ix = indexes[i]
                pod["metadata"].setdefault("annotations", {})[ju.COMPLETION_INDEX] = str(ix)
                pod["metadata"].setdefault("labels", {})[ju.COMPLETION_INDEX] = str(ix)
                pod["spec"]["hostname"] = f"{job['metadata']['name']}-{ix}"
                pod["metadata"]["generateName"] = ju.pod_generate_name_with_index(job["metadata"]["name"], ix)
                if ju.has_backoff_limit_per_index(job):
                    self.add_index_failure_counts(pod, self.delayed.get(ix))
            pods.append(pod)
        return pods

    def add_index_failure_counts(self, pod: dict, replaced: dict | None) -> None:
        failures = ignored = 0
        if replaced is not None:
            failures = ju.index_failure_count(replaced)
            ignored = ju.index_failure_count(replaced, ju.INDEX_IGNORED_FAILURE_COUNT)
            if ju.match_pod_failure_policy(self.job["spec"].get("podFailurePolicy"), replaced)[1]:
                failures += 1
            else:
                ignored += 1
        ann = pod["metadata"].setdefault("annotations", {})
        ann[ju.INDEX_FAILURE_COUNT] = str(failures)
        if ignored > 0:
            ann[ju.INDEX_IGNORED_FAILURE_COUNT] = str(ignored)

    # -- trackJobStatusAndRemoveFinalizers ------------------------------------------------

    def track(self, needs_flush: bool) -> None:
        job, status, now = self.job, self.status, self.now
        indexed = ju.is_indexed(job)
        pods = sorted(self.pods, key=ju.completion_index) if indexed else self.pods
        with_finalizer = {p["metadata"]["uid"] for p in pods
                          if ju.has_tracking_finalizer(p) and p["metadata"]["uid"] not in self.expected_rm}
        if self.clean_uncounted(with_finalizer):
            needs_flush = True
        uncounted = status["uncountedTerminatedPods"]
        unc_s, unc_f = list(uncounted.get("succeeded") or []), list(uncounted.get("failed") or [])
        to_remove, new_succeeded_ix = [], []
        reached_max = False
        completions = job["spec"].get("completions")
        policy = job["spec"].get("podFailurePolicy")
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if not ju.has_tracking_finalizer(pod) or uid in self.expected_rm:
                continue
            failed = ju.is_pod_failed(pod, job)
            if not self.can_remove_finalizer(pod, failed):
                continue
            to_remove.append(pod)
            if podutil.phase(pod) == "Succeeded" and uid not in self.unc_failed:
                if indexed:
                    ix = ju.completion_index(pod)
                    if ix != ju.UNKNOWN_INDEX and ix < int(completions) and \
                            not ju.intervals_has(self.prev_succeeded_ix, ix):
                        new_succeeded_ix.append(ix)
                        needs_flush = True
                elif uid not in self.unc_succeeded and uid not in unc_s:
                    unc_s.append(uid)
                    needs_flush = True
            elif failed or (self.finished is not None and self.finished["type"] != ju.SUCCESS_CRITERIA_MET):
                ix = ju.completion_index(pod)
                if uid not in self.unc_failed and uid not in unc_f and (
                        not indexed or ju.UNKNOWN_INDEX != ix < int(completions)):
                    if ju.match_pod_failure_policy(policy, pod)[1]:
                        unc_f.append(uid)
                        needs_flush = True
            if len(new_succeeded_ix) + len(unc_s) + len(unc_f) >= MAX_UNCOUNTED_PODS:
                reached_max = True
                break
        uncounted["succeeded"], uncounted["failed"] = unc_s, unc_f
        if indexed:
            self.succeeded_ix = ju.with_indexes(self.succeeded_ix, new_succeeded_ix)
            text = ju.format_indexes(self.succeeded_ix)
            if text != (status.get("completedIndexes") or ""):
                needs_flush = True
            status["succeeded"] = ju.intervals_total(self.succeeded_ix)
            status["completedIndexes"] = text
            failed_text = ju.format_indexes(self.failed_ix) if self.failed_ix is not None else None
            if failed_text != status.get("failedIndexes"):
                status["failedIndexes"] = failed_text
                needs_flush = True
        if self.finished is not None and self.finished["type"] == ju.FAILURE_TARGET:
            status["conditions"] = (status.get("conditions") or []) + [self.finished]
            needs_flush = True
            self.finished = ju.new_condition(ju.FAILED, "True", self.finished["reason"],
                                             self.finished["message"], now)
        if self.finished is not None and self.finished["type"] == ju.SUCCESS_CRITERIA_MET \
                and self.finished.get("status") == "True":
            met = ju.find_condition(job, ju.SUCCESS_CRITERIA_MET)
            if met is None or met.get("status") != "True":
                status["conditions"] = (status.get("conditions") or []) + [self.finished]
                needs_flush = True
            self.finished = ju.new_condition(ju.COMPLETE, "True", self.finished["reason"],
                                             self.finished["message"], now)
        if needs_flush:
            self._write_status(saves_backoff=True)
            needs_flush = False
        if to_remove:
            self._act("remove_finalizers", pods=to_remove)
            with_finalizer -= {p["metadata"]["uid"] for p in to_remove}
        if self.clean_uncounted(with_finalizer):
            needs_flush = True
        if not reached_max and self.enact_finished():
            needs_flush = True
            finished = True
        else:
            finished = False
        if needs_flush:
            self._write_status()
            if finished:
                self.record_finished()

    def can_remove_finalizer(self, pod: dict, failed: bool) -> bool:
        if (self.job["metadata"].get("deletionTimestamp") or self.finished is not None
                or podutil.phase(pod) == "Succeeded"):
            return True
        if not failed:
            return False
        if ju.has_backoff_limit_per_index(self.job):
            delayed = self.delayed.get(ju.completion_index(pod))
            if delayed is not None and delayed["metadata"].get("uid") == pod["metadata"].get("uid"):
                return False
        return True

    def clean_uncounted(self, with_finalizer: set[str]) -> bool:
        status = self.status
        uncounted = status["uncountedTerminatedPods"]
        changed = False
        for key, counter in (("succeeded", "succeeded"), ("failed", "failed")):
            old = list(uncounted.get(key) or [])
            kept = [uid for uid in old if uid in with_finalizer]
            if len(kept) != len(old):
                changed = True
                status[counter] = int(status.get(counter) or 0) + len(old) - len(kept)
                uncounted[key] = kept
        return changed

    def enact_finished(self) -> bool:
        if self.finished is None:
            return False
        uncounted = self.status["uncountedTerminatedPods"]
        if (uncounted.get("succeeded") or []) or (uncounted.get("failed") or []):
            return False
        if self.terminating > 0:
            return False
        cond = self.finished
        conds, _ = ju.ensure_condition(self.status.get("conditions") or [], cond["type"], cond["status"],
                                       cond.get("reason", ""), cond.get("message", ""), self.now)
        self.status["conditions"] = conds
        if cond["type"] == ju.COMPLETE:
            self.status["completionTime"] = podutil.format_ts(self.now)
        return True

    def record_finished(self) -> None:
        cond, job = self.finished, self.job
        if cond["type"] == ju.COMPLETE:
            completions = job["spec"].get("completions")
            if completions is not None and int(self.status.get("succeeded") or 0) > int(completions):
                self._event("Warning", "TooManySucceededPods",
                            "Too many succeeded pods running after completion count reached")
            self._event("Normal", "Completed", "Job completed")
        else:
            self._event("Warning", cond.get("reason", ""), cond.get("message", ""))


def plan_sync(job: dict, pods: list[dict], now: datetime.datetime, *, satisfied: bool = True,
              expected_rm_finalizers: set[str] | None = None,
              backoff: ju.BackoffRecord = ju.BackoffRecord()) -> JobPlan:
    """What one ``syncJob`` pass does for ``job`` given its pods (see the module docstring)."""
    return _Sync(job, pods, now, satisfied, expected_rm_finalizers or set(), backoff).run()


def clean_status(status: dict) -> dict:
    """A Job status as Go serializes it: empty lists and zero counters omitted."""
    out = {k: v for k, v in status.items() if v is not None}
    unc = out.get("uncountedTerminatedPods") or {}
    unc = {k: v for k, v in unc.items() if v}
    out["uncountedTerminatedPods"] = unc
    for key in ("active", "succeeded", "failed", "conditions", "completedIndexes"):
        if not out.get(key):
            out.pop(key, None)
    return out
