"""Job helpers: conditions, back-off records, pod failure policy and completion indexes.

Role: upstream's ``pkg/controller/job`` helper files (``backoff_utils.go``,
``pod_failure_policy.go``, ``success_policy.go``, ``indexed_job_utils.go``,
``util/utils.go``) as pure functions; ``job`` composes them into ``syncJob``.

Invariants:
- Pod back-off is 10 s doubled per consecutive failure since the last success, capped
  at 6 minutes, counted from the last failure's finish time.
- Completion indexes are kept as ordered, merged intervals and printed as upstream
  (``0-2,4,6,7``: two neighbours are listed, three or more become a range).
- The first matching podFailurePolicy rule decides: FailJob (with upstream's message),
  Ignore (not counted against backoffLimit), Count, FailIndex.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from pyk8s.api import meta as m

from . import podutil

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
DEFAULT_BACKOFF = 10.0
MAX_BACKOFF = 360.0
UNKNOWN_INDEX = -1
MAX_GENERATED_NAME_LENGTH = 58

COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
FAILURE_TARGET, SUCCESS_CRITERIA_MET = "FailureTarget", "SuccessCriteriaMet"
REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
REASON_BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
REASON_DEADLINE_EXCEEDED = "DeadlineExceeded"
REASON_MAX_FAILED_INDEXES_EXCEEDED = "MaxFailedIndexesExceeded"
REASON_FAILED_INDEXES = "FailedIndexes"
REASON_SUCCESS_POLICY = "SuccessPolicy"
REASON_COMPLETIONS_REACHED = "CompletionsReached"


# --- job predicates and conditions ----------------------------------------------------

def find_condition(job: dict, ctype: str) -> dict | None:
    return podutil.get_condition(job.get("status"), ctype)


def is_job_finished(job: dict) -> bool:
    return any(c.get("type") in (COMPLETE, FAILED) and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def finished_condition(job: dict) -> dict | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in (COMPLETE, FAILED) and c.get("status") == "True":
            return c
    return None


def is_job_succeeded(job: dict) -> bool:
    cond = find_condition(job, COMPLETE)
    return cond is not None and cond.get("status") == "True"


def is_suspended(job: dict) -> bool:
    return bool(job["spec"].get("suspend"))


def is_indexed(job: dict) -> bool:
    return job["spec"].get("completionMode") == "Indexed"


def has_backoff_limit_per_index(job: dict) -> bool:
    return job["spec"].get("backoffLimitPerIndex") is not None


def only_replace_failed_pods(job: dict) -> bool:
    if job["spec"].get("podReplacementPolicy") == "Failed":
        return True
    return job["spec"].get("podFailurePolicy") is not None


def new_condition(ctype: str, status: str, reason: str, message: str,
                  now: datetime.datetime) -> dict:
    ts = podutil.format_ts(now)
    return {"type": ctype, "status": status, "lastProbeTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[dict], ctype: str, status: str, reason: str, message: str,
                     now: datetime.datetime) -> tuple[list[dict], bool]:
    """``ensureJobConditionStatus``: update or append; never append a False condition."""
    for i, c in enumerate(conditions):
        if c.get("type") == ctype:
            if c.get("status") != status or c.get("reason", "") != reason or c.get("message", "") != message:
                conditions = list(conditions)
                conditions[i] = new_condition(ctype, status, reason, message, now)
                return conditions, True
            return conditions, False
    if status != "False":
        return conditions + [new_condition(ctype, status, reason, message, now)], True
    return conditions, False


# --- pods -----------------------------------------------------------------------------

def has_tracking_finalizer(pod: dict) -> bool:
    return JOB_TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def is_pod_failed(pod: dict, job: dict) -> bool:
    """Failed phase, or deleted while not Succeeded (unless only failed pods are replaced)."""
    if podutil.phase(pod) == "Failed":
        return True
    if only_replace_failed_pods(job):
        return False
    return podutil.deletion_timestamp(pod) is not None and podutil.phase(pod) != "Succeeded"


def _latest_finish(statuses: list[dict], include=lambda s: True):
    latest = None
    for s in statuses:
        if not include(s):
            continue
        terminated = (s.get("state") or {}).get("terminated")
        if not terminated or not terminated.get("finishedAt"):
            return None, False
        t = podutil.parse_ts(terminated["finishedAt"])
        latest = t if latest is None or t > latest else latest
    return latest, True


def finished_time(pod: dict) -> datetime.datetime:
    """``getFinishedTime``: Ready=False transition, container finish, deletion, creation."""
    cond = podutil.ready_condition(pod)
    if cond and cond.get("status") == "False" and cond.get("lastTransitionTime"):
        return podutil.parse_ts(cond["lastTransitionTime"])
    status = pod.get("status") or {}
    latest, ok = _latest_finish(status.get("containerStatuses") or [])
    if ok:
        sidecars = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []
                    if c.get("restartPolicy") == "Always"}
        side, ok = _latest_finish(status.get("initContainerStatuses") or [],
                                  lambda s: s.get("name") in sidecars)
        if ok:
            latest = max((t for t in (latest, side) if t is not None), default=None)
            if latest is not None:
                return latest
    deletion = podutil.parse_ts(podutil.deletion_timestamp(pod))
    if deletion is not None:
        grace = int(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        return deletion - datetime.timedelta(seconds=grace)
    return podutil.parse_ts(pod["metadata"].get("creationTimestamp")) or datetime.datetime.min.replace(
        tzinfo=datetime.timezone.utc)


def remove_finalizer_patch(pod: dict) -> dict | None:
    if not has_tracking_finalizer(pod):
        return None
    return {"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}}


# --- back-off ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BackoffRecord:
    failures_after_last_success: int = 0
    last_failure_time: datetime.datetime | None = None


def new_backoff_record(old: BackoffRecord, new_succeeded: list[dict],
                       new_failed: list[dict]) -> BackoffRecord:
    """``newBackoffRecord``: count failures since the last success, keep the last time."""
    succeeded = sorted(new_succeeded, key=finished_time)
    failed = sorted(new_failed, key=finished_time)
    if not succeeded:
        if not failed:
            return old
        return BackoffRecord(old.failures_after_last_success + len(failed), finished_time(failed[-1]))
    if not failed:
        return BackoffRecord()
    last_success = finished_time(succeeded[-1])
    count, last = 0, None
    for pod in reversed(failed):
        t = finished_time(pod)
        if not t > last_success:
            break
        if last is None:
            last = t
        count += 1
    return BackoffRecord(count, last)


def remaining_backoff(failures: int, last_failure: datetime.datetime | None,
                      now: datetime.datetime, default: float = DEFAULT_BACKOFF,
                      maximum: float = MAX_BACKOFF) -> float:
    """Seconds until the next pod may be created (``getRemainingTimeForFailuresCount``)."""
    if failures == 0 or last_failure is None:
        return 0.0
    backoff = default
    for _ in range(1, failures):
        backoff *= 2
        if backoff >= maximum:
            backoff = maximum
            break
    elapsed = (now - last_failure).total_seconds()
    return 0.0 if backoff < elapsed else backoff - elapsed


# --- pod failure policy -----------------------------------------------------------------

def _exit_code_matches(code: int, req: dict) -> bool:
    values = req.get("values") or []
    if req.get("operator") == "In":
        return code in values
    if req.get("operator") == "NotIn":
        return code not in values
    return False


def _matching_container(statuses: list[dict], req: dict) -> dict | None:
    for s in statuses:
        terminated = (s.get("state") or {}).get("terminated")
        if not terminated:
            continue
        if req.get("containerName") in (None, s.get("name")):
            code = int(terminated.get("exitCode") or 0)
            if code != 0 and _exit_code_matches(code, req):
                return s
    return None


def match_pod_failure_policy(policy: dict | None, pod: dict) -> tuple[str | None, bool, str | None]:
    """(job failure message, count towards backoffLimit, matched action)."""
    if policy is None:
        return None, True, None
    status = pod.get("status") or {}
    meta = pod["metadata"]
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            cs = (_matching_container(status.get("containerStatuses") or [], rule["onExitCodes"])
                  or _matching_container(status.get("initContainerStatuses") or [], rule["onExitCodes"]))
            if cs is None:
                continue
            code = cs["state"]["terminated"].get("exitCode")
            message = (f"Container {cs.get('name')} for pod {meta.get('namespace')}/{meta['name']} "
                       f"failed with exit code {code} matching {action} rule at index {index}")
        elif rule.get("onPodConditions") is not None:
            cond = next((c for c in status.get("conditions") or [] for p in rule["onPodConditions"]
                         if c.get("type") == p.get("type") and c.get("status") == (p.get("status") or "True")),
                        None)
            if cond is None:
                continue
            message = (f"Pod {meta.get('namespace')}/{meta['name']} has condition {cond.get('type')} "
                       f"matching {action} rule at index {index}")
        else:
            continue
        if action == "Ignore":
            return None, False, action
        if action in ("FailIndex", "Count"):
            return None, True, action
        if action == "FailJob":
            return message, True, action
    return None, True, None


# --- completion indexes -----------------------------------------------------------------

Intervals = list[tuple[int, int]]


def completion_index(pod: dict) -> int:
    value = m.annotations(pod).get(COMPLETION_INDEX)
    if value is None or not re.fullmatch(r"[+-]?[0-9]+", value):
        return UNKNOWN_INDEX
    index = int(value)
    return index if index >= 0 else UNKNOWN_INDEX


def parse_indexes(text: str | None, completions: int) -> Intervals:
    out: Intervals = []
    if not text:
        return out
    for part in text.split(","):
        limits = part.split("-")
        try:
            first = int(limits[0])
        except ValueError:
            continue
        if first >= completions:
            break
        if len(limits) > 1:
            try:
                last = min(int(limits[1]), completions - 1)
            except ValueError:
                continue
        else:
            last = first
        if out and out[-1][1] == first - 1:
            out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def merge_intervals(a: Intervals, b: Intervals) -> Intervals:
    result: Intervals = []
    for first, last in sorted(a + b):
        if not result or first > result[-1][1] + 1:
            result.append((first, last))
        elif result[-1][1] < last:
            result[-1] = (result[-1][0], last)
    return result


def with_indexes(intervals: Intervals, indexes) -> Intervals:
    return merge_intervals(intervals, [(i, i) for i in sorted(set(indexes))])


def intervals_total(intervals: Intervals) -> int:
    return sum(last - first + 1 for first, last in intervals)


def intervals_has(intervals: Intervals, index: int) -> bool:
    return any(first <= index <= last for first, last in intervals)


def format_indexes(intervals: Intervals) -> str:
    parts = []
    for first, last in intervals:
        if last == first:
            parts.append(str(first))
        elif last == first + 1:
            parts.append(f"{first},{last}")
        else:
            parts.append(f"{first}-{last}")
    return ",".join(parts)


def index_failure_count(pod: dict, key: str = INDEX_FAILURE_COUNT) -> int:
    value = m.annotations(pod).get(key)
    try:
        count = int(value) if value is not None else 0
    except ValueError:
        return 0
    return count if 0 <= count < (1 << 31) else 0


def first_pending_indexes(*, active: list[dict], terminating: list[dict], succeeded: Intervals,
                          failed: Intervals | None, count: int, completions: int) -> list[int]:
    """``firstPendingIndexes``: the lowest ``count`` indexes nobody covers."""
    if count == 0:
        return []
    non_pending = with_indexes(succeeded, {completion_index(p) for p in active} - {UNKNOWN_INDEX})
    non_pending = with_indexes(non_pending, {completion_index(p) for p in terminating} - {UNKNOWN_INDEX})
    if failed is not None:
        non_pending = merge_intervals(non_pending, failed)
    result, candidate = [], 0
    for first, last in non_pending:
        while candidate < completions and len(result) < count and candidate < first:
            result.append(candidate)
            candidate += 1
        candidate = max(candidate, last + 1)
    while candidate < completions and len(result) < count:
        result.append(candidate)
        candidate += 1
    return result


def duplicated_index_pods_for_removal(pods: list[dict], completions: int) -> tuple[list[dict], list[dict]]:
    """(pods to remove: repeated, missing or out-of-range indexes; pods left)."""
    rm, left = [], []
    groups: dict[int, list[dict]] = {}
    for pod in sorted(pods, key=completion_index):
        ix = completion_index(pod)
        if ix == UNKNOWN_INDEX or ix >= completions:
            rm.append(pod)
            continue
        groups.setdefault(ix, []).append(pod)
    for ix in sorted(groups):
        same = podutil.sort_active_pods(groups[ix]) if len(groups[ix]) > 1 else groups[ix]
        rm.extend(same[:-1])
        left.append(same[-1])
    return rm, left


def pod_generate_name_with_index(job_name: str, index: int) -> str:
    suffix = f"-{index}-"
    prefix = job_name + suffix
    if len(prefix) > MAX_GENERATED_NAME_LENGTH:
        prefix = prefix[:MAX_GENERATED_NAME_LENGTH - len(suffix)] + suffix
    return prefix


def add_completion_index_env(template: dict) -> None:
    """Every container gets ``JOB_COMPLETION_INDEX`` from the pod's index label."""
    spec = template.setdefault("spec", {})
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            env = c.setdefault("env", [])
            if any(v.get("name") == COMPLETION_INDEX_ENV for v in env):
                continue
            env.append({"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
                "fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}}})


def match_success_policy(policy: dict | None, completions: int,
                         succeeded: Intervals) -> tuple[str, bool]:
    if policy is None or not succeeded:
        return "", False
    for index, rule in enumerate(policy.get("rules") or []):
        if rule.get("succeededIndexes") is not None:
            required = parse_indexes(rule["succeededIndexes"], completions)
            if not required:
                continue
            contains = sum(max(0, min(rl, sl) - max(rf, sf) + 1)
                           for rf, rl in required for sf, sl in succeeded)
            count = rule.get("succeededCount")
            if contains == intervals_total(required) or (count is not None and contains >= count):
                return f"Matched rules at index {index}", True
        elif rule.get("succeededCount") is not None and intervals_total(succeeded) >= rule["succeededCount"]:
            return f"Matched rules at index {index}", True
    return "", False


# --- ttl after finished -----------------------------------------------------------------

def ttl_expire_at(job: dict) -> datetime.datetime | None:
    """When a finished Job with ttlSecondsAfterFinished is due for deletion."""
    ttl = job["spec"].get("ttlSecondsAfterFinished")
    cond = finished_condition(job)
    if ttl is None or cond is None:
        return None
    finished = podutil.parse_ts(cond.get("lastTransitionTime"))
    if finished is None:
        return None
    return finished + datetime.timedelta(seconds=int(ttl))
