"""CronJob decisions: schedule times, missed runs, concurrency, history limits.

Role: the pure half of upstream's ``pkg/controller/cronjob`` (``cronjob_controllerv2.go``
``syncCronJob``/``cleanupFinishedJobs``, ``utils.go`` ``mostRecentScheduleTime``,
``nextScheduleTime``, ``getJobFromTemplate2``). Schedules are parsed by croniter
(standard five fields and the ``@hourly``-style macros) in ``spec.timeZone`` (or
``TZ=``/``CRON_TZ=`` prefixes, as upstream accepts with a warning), defaulting to the
controller's zone, UTC.

Invariants:
- ``plan_sync`` never creates two Jobs for one scheduled time: the Job name is
  ``<cronjob>-<scheduled time in minutes since the epoch>`` and a time equal to
  ``lastScheduleTime`` or already active is skipped.
- Only the most recent missed time is run; with more than 100 missed times a
  TooManyMissedTimes warning is emitted; past ``startingDeadlineSeconds`` a run is
  missed (MissSchedule) instead of started late.
- ``requeue_after`` is the time to the next schedule plus 100 ms, as upstream.
"""
from __future__ import annotations

import copy
import datetime
import re
import zoneinfo
from dataclasses import dataclass, field

from croniter import croniter

from . import jobutil, podutil

NEXT_SCHEDULE_DELTA = 0.1
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
_UTC = datetime.timezone.utc


class ScheduleError(ValueError):
    """An unparsable schedule or time zone; ``str()`` is the message for the event."""


@dataclass
class Schedule:
    """A parsed schedule: ``next(t)`` is the first time strictly after ``t``."""

    expression: str
    zone: datetime.tzinfo
    every: float | None = None  # ``@every <duration>``: a constant delay

    def next(self, t: datetime.datetime) -> datetime.datetime:
        if self.every is not None:
            # robfig's ConstantDelaySchedule: t + delay, dropping sub-second parts.
            return (t + datetime.timedelta(seconds=self.every)).replace(microsecond=0)
        start = t.astimezone(self.zone)
        it = croniter(self.expression, start)
        return it.get_next(datetime.datetime).astimezone(_UTC)


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds of a Go duration string (``1h30m``, ``90s``, ``1.5h``)."""
    match = re.fullmatch(r"((?:[0-9]*\.?[0-9]+(?:ns|us|\u00b5s|ms|s|m|h))+)", text)
    if not match:
        raise ScheduleError(f"time: invalid duration {text!r}")
    return sum(float(n) * _GO_UNITS[u]
               for n, u in re.findall(r"([0-9]*\.?[0-9]+)(ns|us|\u00b5s|ms|s|m|h)", text))


def load_zone(name: str | None) -> datetime.tzinfo:
    if not name or name == "UTC":
        return _UTC
    if name == "Local":
        return _UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise ScheduleError(f"unknown time zone {name}") from err


def parse_schedule(schedule: str, time_zone: str | None = None) -> Schedule:
    """``cron.ParseStandard(formatSchedule(cj))``."""
    text = schedule.strip()
    zone_name = time_zone
    if text.startswith(("TZ=", "CRON_TZ=")):
        prefix, _, text = text.partition(" ")
        zone_name = prefix.split("=", 1)[1]
        text = text.strip()
    zone = load_zone(zone_name)
    if text.startswith("@every "):
        delay = parse_go_duration(text[len("@every "):].strip())
        return Schedule(text, zone, every=max(1.0, float(int(delay))))
    fields = text.split()
    if not text.startswith("@") and len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    if text.startswith("@") and text not in ("@yearly", "@annually", "@monthly", "@weekly",
                                               "@daily", "@midnight", "@hourly"):
        raise ScheduleError(f"unrecognized descriptor: {text}")
    if not croniter.is_valid(text):
        raise ScheduleError(f"failed to parse schedule {text!r}")
    return Schedule(text, zone)


NONE_MISSED, FEW_MISSED, MANY_MISSED = 0, 1, 2


def _created(cj: dict) -> datetime.datetime:
    return podutil.parse_ts(cj["metadata"].get("creationTimestamp")) or datetime.datetime(1970, 1, 1, tzinfo=_UTC)


def most_recent_schedule_time(cj: dict, now: datetime.datetime, schedule: Schedule,
                              include_starting_deadline: bool):
    """(earliest time, most recent unmet time or None, missed kind); may raise ScheduleError."""
    earliest = _created(cj)
    last = podutil.parse_ts((cj.get("status") or {}).get("lastScheduleTime"))
    if last is not None:
        earliest = last
    deadline = cj["spec"].get("startingDeadlineSeconds")
    if include_starting_deadline and deadline is not None:
        scheduling_deadline = now - datetime.timedelta(seconds=int(deadline))
        if scheduling_deadline > earliest:
            earliest = scheduling_deadline
    t1 = schedule.next(earliest)
    t2 = schedule.next(t1)
    if now < t1:
        return earliest, None, NONE_MISSED
    if now < t2:
        return earliest, t1, NONE_MISSED
    between = round((t2 - t1).total_seconds())
    if between < 1:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    elapsed = int((now - t1).total_seconds())
    missed = elapsed // between + 1
    potential = t1 + datetime.timedelta(seconds=(missed - 2) * between)
    most_recent = None
    t = schedule.next(potential)
    while not t > now:
        most_recent = t
        t = schedule.next(t)
    kind = MANY_MISSED if missed > 100 else FEW_MISSED
    return earliest, most_recent, kind


def next_schedule_delay(cj: dict, now: datetime.datetime, schedule: Schedule) -> float:
    """``nextScheduleTimeDuration``: seconds until the next run, plus 100 ms."""
    try:
        earliest, recent, missed = most_recent_schedule_time(cj, now, schedule, False)
    except ScheduleError:
        recent = now
    else:
        if recent is None:
            recent = earliest if missed == NONE_MISSED else now
    return (schedule.next(recent) - now).total_seconds() + NEXT_SCHEDULE_DELTA


def job_name(cj: dict, scheduled: datetime.datetime) -> str:
    return f"{cj['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cj: dict, scheduled: datetime.datetime, zone: datetime.tzinfo) -> dict:
    """``getJobFromTemplate2``: the Job for one scheduled time."""
    template = cj["spec"].get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = scheduled.astimezone(zone).isoformat().replace("+00:00", "Z")
    meta = {"name": job_name(cj, scheduled), "annotations": annotations,
            "ownerReferences": [podutil.new_controller_ref(cj, "batch/v1", "CronJob")]}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


# --- the sync pass ------------------------------------------------------------------------

@dataclass
class CronPlan:
    """Writes of one pass, in order: ``("delete", job)``, ``("create", job)``, events."""

    cronjob: dict
    actions: list[tuple] = field(default_factory=list)
    update_status: bool = False
    requeue_after: float | None = None


def _active_uids(cj: dict) -> set[str]:
    return {ref.get("uid") for ref in (cj.get("status") or {}).get("active") or []}


def _drop_active(cj: dict, uid: str) -> None:
    active = [r for r in cj["status"].get("active") or [] if r.get("uid") != uid]
    if active:
        cj["status"]["active"] = active
    else:
        cj["status"].pop("active", None)


def _event(plan: CronPlan, etype: str, reason: str, message: str) -> None:
    plan.actions.append(("event", etype, reason, message))


def _delete_job(plan: CronPlan, job: dict) -> None:
    plan.actions.append(("delete", job))
    _drop_active(plan.cronjob, job["metadata"].get("uid"))
    _event(plan, "Normal", "SuccessfulDelete", f"Deleted job {job['metadata']['name']}")


def _start_time_key(job: dict):
    start = podutil.parse_ts((job.get("status") or {}).get("startTime"))
    far = datetime.datetime.max.replace(tzinfo=_UTC)
    return (start is None, start or far, job["metadata"]["name"])


def cleanup_finished_jobs(plan: CronPlan, jobs: list[dict]) -> None:
    """Delete the oldest finished Jobs beyond the history limits."""
    spec = plan.cronjob["spec"]
    for ctype, limit in ((jobutil.COMPLETE, spec.get("successfulJobsHistoryLimit")),
                         (jobutil.FAILED, spec.get("failedJobsHistoryLimit"))):
        if limit is None:
            continue
        done = [j for j in jobs if (jobutil.finished_condition(j) or {}).get("type") == ctype]
        surplus = len(done) - int(limit)
        for job in sorted(done, key=_start_time_key)[:max(surplus, 0)]:
            _delete_job(plan, job)
            plan.update_status = True


def unlisted_active(cj: dict, jobs: list[dict]) -> list[dict]:
    """Active references to Jobs missing from ``jobs``: the caller re-reads each one."""
    children = {j["metadata"].get("uid") for j in jobs}
    return [r for r in (cj.get("status") or {}).get("active") or [] if r.get("uid") not in children]


def plan_sync(cj: dict, jobs: list[dict], now: datetime.datetime,
              gone: list[dict] = ()) -> CronPlan:
    """One ``sync``: clean up history, reconcile ``status.active``, maybe start a Job.

    ``jobs`` are the Jobs this CronJob controls; ``gone`` the active references the
    caller found missing from the API (see ``unlisted_active``).
    """
    plan = CronPlan(copy.deepcopy(cj))
    cj = plan.cronjob
    cj.setdefault("status", {})
    cleanup_finished_jobs(plan, jobs)
    for job in jobs:
        uid = job["metadata"].get("uid")
        found = uid in _active_uids(cj)
        if not found and not jobutil.is_job_finished(job):
            _event(plan, "Warning", "UnexpectedJob",
                   f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}")
        elif found and jobutil.is_job_finished(job):
            cond = jobutil.finished_condition(job)
            _drop_active(cj, uid)
            _event(plan, "Normal", "SawCompletedJob",
                   f"Saw completed job: {job['metadata']['name']}, condition: {cond['type']}")
            plan.update_status = True
        elif jobutil.is_job_succeeded(job):
            completed = (job.get("status") or {}).get("completionTime")
            last = podutil.parse_ts(cj["status"].get("lastSuccessfulTime"))
            if completed and (last is None or podutil.parse_ts(completed) > last):
                cj["status"]["lastSuccessfulTime"] = completed
                plan.update_status = True
    for ref in gone:
        # An active Job went away: drop it (MissingJob) so the schedule can go on.
        _event(plan, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
        _drop_active(cj, ref.get("uid"))
        plan.update_status = True
    schedule_next(plan, now)
    return plan


def schedule_next(plan: CronPlan, now: datetime.datetime) -> None:
    cj = plan.cronjob
    if cj["metadata"].get("deletionTimestamp"):
        return
    zone_name = cj["spec"].get("timeZone")
    try:
        load_zone(zone_name)
    except ScheduleError as err:
        _event(plan, "Warning", "UnknownTimeZone", f'invalid timeZone: "{zone_name}": {err}')
        return
    if cj["spec"].get("suspend"):
        return
    text = cj["spec"].get("schedule") or ""
    if zone_name and text.strip().startswith(("TZ=", "CRON_TZ=")):
        _event(plan, "Warning", "UnsupportedSchedule",
               f'CRON_TZ or TZ used in schedule "{text}" is not officially supported, see '
               "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details")
    try:
        schedule = parse_schedule(text, zone_name)
    except ScheduleError as err:
        _event(plan, "Warning", "UnparseableSchedule", f'unparseable schedule: "{text}" : {err}')
        return
    try:
        _, scheduled, missed = most_recent_schedule_time(cj, now, schedule, True)
    except ScheduleError as err:
        _event(plan, "Warning", "InvalidSchedule", f"invalid schedule: {text} : {err}")
        return
    if scheduled is not None and missed == MANY_MISSED:
        _event(plan, "Warning", "TooManyMissedTimes",
               "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew")
    plan.requeue_after = next_schedule_delay(cj, now, schedule)
    if scheduled is None or scheduled > now:
        return
    deadline = cj["spec"].get("startingDeadlineSeconds")
    if deadline is not None and scheduled + datetime.timedelta(seconds=int(deadline)) < now:
        _event(plan, "Warning", "MissSchedule",
               f"Missed scheduled time to start a job: {scheduled.strftime('%a, %d %b %Y %H:%M:%S +0000')}")
        return
    name = job_name(cj, scheduled)
    active = cj["status"].get("active") or []
    if any(r.get("name") == name for r in active) or \
            podutil.parse_ts(cj["status"].get("lastScheduleTime")) == scheduled:
        return
    policy = cj["spec"].get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and active:
        _event(plan, "Normal", "JobAlreadyActive",
               "Not starting job because prior execution is running and concurrency policy is Forbid")
        return
    if policy == "Replace":
        for ref in list(active):
            _delete_job(plan, {"metadata": {"name": ref.get("name"), "namespace": ref.get("namespace"),
                                            "uid": ref.get("uid")}})
            plan.update_status = True
    job = job_from_template(cj, scheduled, schedule.zone)
    job["metadata"]["namespace"] = cj["metadata"].get("namespace")
    plan.actions.append(("create", job))
    plan.update_status = True
    # The caller appends the created Job's reference to status.active.
    cj["status"]["lastScheduleTime"] = podutil.format_ts(scheduled)
    plan.requeue_after = next_schedule_delay(cj, now, schedule)


def job_reference(job: dict) -> dict:
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta.get("namespace"), "name": meta["name"],
            "uid": meta.get("uid"), "apiVersion": "batch/v1",
            "resourceVersion": meta.get("resourceVersion")}
