"""CronJob schedules with a fake clock: next times, missed runs, concurrency, history."""
import datetime

import pytest

from pyk8s.controllers import cronjob as cc
from pyk8s.controllers import jobutil as ju

from .builders import at, template, ts, uid

UTC = datetime.timezone.utc


def cronjob(schedule="*/5 * * * *", **spec):
    base = {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"team": "a"}},
                            "spec": {"template": template()}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": uid(),
                         "creationTimestamp": ts(at(0))},
            "spec": base, "status": {}}


def creates(plan):
    return [a[1] for a in plan.actions if a[0] == "create"]


def events(plan):
    return [(a[1], a[2], a[3]) for a in plan.actions if a[0] == "event"]


def finished_job(name, ctype, start, done):
    return {"metadata": {"name": name, "uid": uid(), "namespace": "default"},
            "status": {"startTime": ts(at(start)), "completionTime": ts(at(done)),
                       "conditions": [{"type": ctype, "status": "True"}]}}


@pytest.mark.parametrize("schedule,zone,after,expected", [
    ("@hourly", None, datetime.datetime(2025, 1, 1, 10, 30, tzinfo=UTC), datetime.datetime(2025, 1, 1, 11, tzinfo=UTC)),
    ("@daily", None, datetime.datetime(2025, 1, 1, 10, 30, tzinfo=UTC), datetime.datetime(2025, 1, 2, tzinfo=UTC)),
    ("0 9 * * 1-5", "Europe/Berlin", datetime.datetime(2025, 1, 3, 9, tzinfo=UTC),   # Fri 10:00 Berlin
     datetime.datetime(2025, 1, 6, 8, tzinfo=UTC)),                                  # Mon 09:00 Berlin
    ("TZ=America/New_York 0 0 * * *", None, datetime.datetime(2025, 1, 1, tzinfo=UTC),
     datetime.datetime(2025, 1, 1, 5, tzinfo=UTC)),
    ("*/15 * * * *", None, datetime.datetime(2025, 1, 1, 10, 15, tzinfo=UTC),
     datetime.datetime(2025, 1, 1, 10, 30, tzinfo=UTC)),
])
def test_next_times(schedule, zone, after, expected):
    assert cc.parse_schedule(schedule, zone).next(after) == expected


def test_bad_schedules_and_zones_are_reported():
    with pytest.raises(cc.ScheduleError):
        cc.parse_schedule("* * *")
    with pytest.raises(cc.ScheduleError):
        cc.parse_schedule("* * * * *", "Mars/Olympus")
    plan = cc.plan_sync(cronjob("not a schedule"), [], at(600))
    assert events(plan)[0][1] == "UnparseableSchedule" and plan.requeue_after is None


def test_runs_on_schedule_with_a_deterministic_name():
    cj = cronjob()
    assert creates(cc.plan_sync(cj, [], at(299))) == []
    plan = cc.plan_sync(cj, [], at(301))
    job = creates(plan)[0]
    assert job["metadata"]["name"] == f"tick-{int(at(300).timestamp()) // 60}"
    assert job["metadata"]["labels"] == {"team": "a"}
    assert job["metadata"]["annotations"][cc.SCHEDULED_TIMESTAMP_ANNOTATION] == "2025-01-01T00:05:00Z"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert plan.cronjob["status"]["lastScheduleTime"] == ts(at(300))
    assert plan.requeue_after == pytest.approx(299.1)
    # The same scheduled time is never run twice.
    assert creates(cc.plan_sync(plan.cronjob, [], at(302))) == []


def test_only_the_most_recent_missed_time_runs_and_too_many_warns():
    cj = cronjob("* * * * *")
    plan = cc.plan_sync(cj, [], at(60 * 50 + 30))
    assert [j["metadata"]["name"] for j in creates(plan)] == [f"tick-{int(at(3000).timestamp()) // 60}"]
    assert not [e for e in events(plan) if e[1] == "TooManyMissedTimes"]
    plan = cc.plan_sync(cj, [], at(60 * 200))
    assert ("Warning", "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            ) in events(plan)
    assert len(creates(plan)) == 1


def test_starting_deadline_misses_late_runs():
    cj = cronjob("0 * * * *", startingDeadlineSeconds=60)
    plan = cc.plan_sync(cj, [], at(3600 + 30))
    assert len(creates(plan)) == 1
    plan = cc.plan_sync(cj, [], at(3600 + 120))
    assert creates(plan) == []                        # the deadline window excludes 01:00 entirely
    cj["status"]["lastScheduleTime"] = ts(at(0))
    cj2 = cronjob("0 * * * *", startingDeadlineSeconds=200)
    plan = cc.plan_sync(cj2, [], at(3600 + 120))
    assert len(creates(plan)) == 1


def test_concurrency_policies():
    running = {"metadata": {"name": "tick-1", "uid": "u1", "namespace": "default"}, "status": {}}
    active = [{"kind": "Job", "name": "tick-1", "namespace": "default", "uid": "u1"}]
    forbid = cronjob(concurrencyPolicy="Forbid")
    forbid["status"] = {"active": active}
    plan = cc.plan_sync(forbid, [running], at(301))
    assert creates(plan) == []
    assert events(plan)[-1][1] == "JobAlreadyActive"
    replace = cronjob(concurrencyPolicy="Replace")
    replace["status"] = {"active": active}
    plan = cc.plan_sync(replace, [running], at(301))
    kinds = [a[0] for a in plan.actions if a[0] in ("delete", "create")]
    assert kinds == ["delete", "create"]
    assert ("Normal", "SuccessfulDelete", "Deleted job tick-1") in events(plan)
    allow = cronjob()
    allow["status"] = {"active": active}
    assert len(creates(cc.plan_sync(allow, [running], at(301)))) == 1


def test_finished_jobs_leave_active_and_history_is_trimmed():
    cj = cronjob(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0)
    jobs = [finished_job(f"ok-{i}", "Complete", i * 10, i * 10 + 5) for i in range(3)]
    jobs.append(finished_job("bad", "Failed", 1, 2))
    cj["status"] = {"active": [{"name": "ok-2", "uid": jobs[2]["metadata"]["uid"]}]}
    plan = cc.plan_sync(cj, jobs, at(100))
    deleted = [a[1]["metadata"]["name"] for a in plan.actions if a[0] == "delete"]
    assert deleted == ["ok-0", "ok-1", "bad"]
    assert "active" not in plan.cronjob["status"]
    # lastSuccessfulTime comes on the pass after the job left status.active, as upstream.
    plan2 = cc.plan_sync(plan.cronjob, jobs[2:3], at(101))
    assert plan2.cronjob["status"]["lastSuccessfulTime"] == ts(at(25))


def test_suspended_cronjob_does_not_run_and_missing_jobs_are_forgotten():
    cj = cronjob(suspend=True)
    assert creates(cc.plan_sync(cj, [], at(301))) == []
    cj = cronjob()
    cj["status"] = {"active": [{"name": "gone", "uid": "x"}]}
    missing = cc.unlisted_active(cj, [])
    assert [r["name"] for r in missing] == ["gone"]
    plan = cc.plan_sync(cj, [], at(10), gone=missing)
    assert "active" not in plan.cronjob["status"] and plan.update_status
    assert ("Normal", "MissingJob", "Active job went missing: gone") in events(plan)
    assert ju.is_job_finished(finished_job("x", "Failed", 0, 1))
