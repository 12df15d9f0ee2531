"""Jobs and CronJobs through the API: completion, failure, kubectl wait, create --from."""
import calendar
import json
import subprocess
import time

from .conftest import KUBECTL, eventually

JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: %s}
spec:
  completions: %d
  parallelism: %d
  backoffLimit: %d
  completionMode: %s
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["true"]}]
"""


def live(pods, job):
    return [p for p in pods.list(f"batch.kubernetes.io/job-name={job}")
            if p["status"].get("phase") not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")]


def conditions(cluster, ns, job):
    return {c["type"]: c for c in cluster.get(ns, "job", job)["status"].get("conditions") or []}


def test_job_completes_and_kubectl_wait_sees_it(cluster, ns, pods):
    k = cluster.kubectl
    k("apply", "-n", ns, "-f", "-", input=JOB % ("pi", 2, 1, 6, "NonIndexed"))
    env = {"KUBECONFIG": cluster.kubeconfig, "HOME": cluster.data_dir, "PATH": "/usr/bin:/bin"}
    waiter = subprocess.Popen([KUBECTL, "wait", "--for=condition=complete", "job/pi", "-n", ns,
                               "--timeout=60s"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env)
    try:
        for _ in range(2):
            pod = eventually(lambda: live(pods, "pi"), message="a running pod")[0]
            assert "batch.kubernetes.io/job-tracking" in pod["metadata"]["finalizers"]
            pods.finish(pod["metadata"]["name"])
        out, _ = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert "job.batch/pi condition met" in out
    job = cluster.get(ns, "job", "pi")
    assert job["status"]["succeeded"] == 2 and job["status"]["completionTime"]
    conds = conditions(cluster, ns, "pi")
    assert conds["Complete"]["status"] == "True" and conds["SuccessCriteriaMet"]["status"] == "True"
    done = pods.list("batch.kubernetes.io/job-name=pi")
    assert all("batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or [])
               for p in done)
    line = k("get", "job", "pi", "-n", ns).stdout.split("\n")[1].split()
    assert line[1] == "Complete" and line[2] == "2/2"

    def reasons():
        return [e["reason"] for e in cluster.get(ns, "events")["items"]
                if e["involvedObject"]["name"] == "pi"]
    # Events are written in the background: "Completed" may follow the condition.
    eventually(lambda: {"SuccessfulCreate", "Completed"} <= set(reasons()),
               message="SuccessfulCreate and Completed events")


def test_job_fails_after_backoff_limit(cluster, ns, pods):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=JOB % ("flaky", 1, 1, 0, "NonIndexed"))
    pod = eventually(lambda: live(pods, "flaky"), message="a pod")[0]
    pods.finish(pod["metadata"]["name"], succeeded=False)
    eventually(lambda: conditions(cluster, ns, "flaky").get("Failed"), message="Failed")
    conds = conditions(cluster, ns, "flaky")
    assert conds["Failed"]["reason"] == "BackoffLimitExceeded"
    assert conds["Failed"]["message"] == "Job has reached the specified backoff limit"
    assert conds["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert cluster.get(ns, "job", "flaky")["status"]["failed"] == 1


def test_indexed_job_pods(cluster, ns, pods):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=JOB % ("idx", 3, 3, 6, "Indexed"))
    eventually(lambda: len(live(pods, "idx")) == 3, message="3 pods")
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
                for p in live(pods, "idx")}
    assert sorted(by_index) == ["0", "1", "2"]
    p1 = by_index["1"]
    assert p1["spec"]["hostname"] == "idx-1" and p1["metadata"]["name"].startswith("idx-1-")
    env = p1["spec"]["containers"][0]["env"]
    assert env[0]["name"] == "JOB_COMPLETION_INDEX"
    for p in by_index.values():
        pods.finish(p["metadata"]["name"])
    eventually(lambda: conditions(cluster, ns, "idx").get("Complete"), message="Complete")
    assert cluster.get(ns, "job", "idx")["status"]["completedIndexes"] == "0-2"


CRON = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
"""


def test_create_job_from_cronjob_and_a_scheduled_run(cluster, ns, pods):
    k = cluster.kubectl
    k("apply", "-n", ns, "-f", "-", input=CRON)
    k("create", "job", "manual", "--from=cronjob/tick", "-n", ns)
    pod = eventually(lambda: live(pods, "manual"), message="the manual job's pod")[0]
    pods.finish(pod["metadata"]["name"])
    eventually(lambda: conditions(cluster, ns, "manual").get("Complete"), message="manual complete")
    job = cluster.get(ns, "job", "manual")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    # A scheduled run happens at the next minute boundary.
    seconds_left = 60 - time.gmtime().tm_sec
    scheduled = eventually(lambda: [j for j in cluster.get(ns, "jobs")["items"]
                                    if j["metadata"]["name"].startswith("tick-")],
                           timeout=seconds_left + 20, interval=0.5, message="a scheduled job")
    name = scheduled[0]["metadata"]["name"]
    cj = eventually(lambda: cluster.get(ns, "cronjob", "tick")["status"].get("active") and
                    cluster.get(ns, "cronjob", "tick"), message="active job in status")
    assert cj["status"]["active"][0]["name"] == name
    # Upstream names a scheduled Job <cronjob>-<scheduled time in minutes since the epoch>.
    last = cj["status"]["lastScheduleTime"]
    scheduled_at = calendar.timegm(time.strptime(last, "%Y-%m-%dT%H:%M:%SZ"))
    assert scheduled_at % 60 == 0 and abs(scheduled_at - time.time()) < 120
    assert name == f"tick-{scheduled_at // 60}"
    annotations = scheduled[0]["metadata"]["annotations"]
    assert annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] == last
    pod = eventually(lambda: live(pods, name), message="scheduled pod")[0]
    pods.finish(pod["metadata"]["name"])
    eventually(lambda: not cluster.get(ns, "cronjob", "tick")["status"].get("active"),
               message="the finished job leaves status.active")
    completed = eventually(lambda: cluster.get(ns, "job", name)["status"].get("completionTime"))
    eventually(lambda: cluster.get(ns, "cronjob", "tick")["status"].get("lastSuccessfulTime") == completed,
               message="lastSuccessfulTime of the scheduled run")
    events = [e["message"] for e in cluster.get(ns, "events")["items"]
              if e["involvedObject"]["kind"] == "CronJob"]
    assert f"Created job {name}" in events


def job_json(name, **spec):
    body = {"template": {"spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "c", "image": "busybox"}]}}}
    body.update(spec)
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                       "spec": body})


def by_index(pods, job):
    return {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
            for p in live(pods, job)}


def status_column(cluster, ns, job):
    return cluster.kubectl("get", "job", job, "-n", ns).stdout.split("\n")[1].split()[1]


def test_backoff_limit_per_index_and_max_failed_indexes(cluster, ns, pods):
    k = cluster.kubectl
    # Index 0 fails with no retries left; the other indexes still run to the end.
    k("create", "-n", ns, "-f", "-", input=job_json(
        "per-index", completionMode="Indexed", completions=3, parallelism=3,
        backoffLimitPerIndex=0, maxFailedIndexes=1))
    pods_by_index = eventually(lambda: len(by_index(pods, "per-index")) == 3
                               and by_index(pods, "per-index"), message="3 indexed pods")
    pods.finish(pods_by_index["0"]["metadata"]["name"], succeeded=False)
    eventually(lambda: cluster.get(ns, "job", "per-index")["status"].get("failedIndexes") == "0",
               message="index 0 recorded as failed")
    assert "Failed" not in conditions(cluster, ns, "per-index")
    assert sorted(by_index(pods, "per-index")) == ["1", "2"]  # index 0 is not retried
    for i in ("1", "2"):
        pods.finish(pods_by_index[i]["metadata"]["name"])
    k("wait", "--for=condition=failed", "job/per-index", "-n", ns, "--timeout=30s")
    status = cluster.get(ns, "job", "per-index")["status"]
    assert status["failedIndexes"] == "0" and status["completedIndexes"] == "1,2"  # upstream never writes "1-2"
    assert status["failed"] == 1 and status["succeeded"] == 2
    conds = conditions(cluster, ns, "per-index")
    for kind in ("FailureTarget", "Failed"):
        assert conds[kind]["reason"] == "FailedIndexes"
        assert conds[kind]["message"] == "Job has failed indexes"
    assert status_column(cluster, ns, "per-index") == "Failed"

    # One failed index more than maxFailedIndexes fails the Job at once.
    k("create", "-n", ns, "-f", "-", input=job_json(
        "max-failed", completionMode="Indexed", completions=2, parallelism=2,
        backoffLimitPerIndex=0, maxFailedIndexes=0))
    pods_by_index = eventually(lambda: len(by_index(pods, "max-failed")) == 2
                               and by_index(pods, "max-failed"), message="2 indexed pods")
    pods.finish(pods_by_index["0"]["metadata"]["name"], succeeded=False)
    k("wait", "--for=condition=failed", "job/max-failed", "-n", ns, "--timeout=30s")
    conds = conditions(cluster, ns, "max-failed")
    assert conds["Failed"]["reason"] == "MaxFailedIndexesExceeded"
    assert conds["Failed"]["message"] == \
        "Job has exceeded the specified maximal number of failed indexes"
    assert cluster.get(ns, "job", "max-failed")["status"]["failedIndexes"] == "0"
    assert live(pods, "max-failed") == []  # the still-running index 1 was terminated


def test_pod_replacement_policy_failed_waits_for_terminal_pods(cluster, ns, pods):
    k = cluster.kubectl
    k("create", "-n", ns, "-f", "-", input=job_json("prp", podReplacementPolicy="Failed",
                                                    backoffLimit=3))
    first = eventually(lambda: live(pods, "prp"), message="the first pod")[0]["metadata"]["name"]
    # A finalizer of our own keeps the deleted pod Terminating, as a kubelet stopping it would.
    k("patch", "pod", first, "-n", ns, "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/hold"}]))
    try:
        k("delete", "pod", first, "-n", ns, "--wait=false")
        status = eventually(lambda: (lambda st: st.get("terminating") == 1 and st)(
            cluster.get(ns, "job", "prp")["status"]), message="status.terminating 1")
        assert status.get("active", 0) == 0 and status.get("failed", 0) == 0
        # A terminating pod is not replaced while it is not terminal.
        assert [p["metadata"]["name"] for p in pods.list("batch.kubernetes.io/job-name=prp")] == [first]
        line = k("get", "job", "prp", "-n", ns).stdout.split("\n")[1].split()
        assert line[1:3] == ["Running", "0/1"]
        # The kubelet reports it Failed: now it counts, and a replacement follows (after back-off).
        pods.finish(first, succeeded=False)
        eventually(lambda: cluster.get(ns, "job", "prp")["status"].get("failed") == 1,
                   message="the terminal pod counted as failed")
        second = eventually(lambda: live(pods, "prp"), timeout=40, interval=0.5,
                            message="a replacement pod")[0]
        assert second["metadata"]["name"] != first
        assert "terminating" not in cluster.get(ns, "job", "prp")["status"] or \
            cluster.get(ns, "job", "prp")["status"]["terminating"] == 0
    finally:
        k("patch", "pod", first, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
          check=False)


def test_success_policy_completes_the_whole_job(cluster, ns, pods):
    k = cluster.kubectl
    k("create", "-n", ns, "-f", "-", input=job_json(
        "leader", completionMode="Indexed", completions=3, parallelism=3,
        successPolicy={"rules": [{"succeededIndexes": "0"}]}))
    pods_by_index = eventually(lambda: len(by_index(pods, "leader")) == 3
                               and by_index(pods, "leader"), message="3 indexed pods")
    pods.finish(pods_by_index["0"]["metadata"]["name"])
    k("wait", "--for=condition=complete", "job/leader", "-n", ns, "--timeout=30s")
    job = cluster.get(ns, "job", "leader")
    conds = job["status"]["conditions"]
    assert [c["type"] for c in conds] == ["SuccessCriteriaMet", "Complete"]
    for c in conds:
        assert c["status"] == "True" and c["reason"] == "SuccessPolicy"
        assert c["message"] == "Matched rules at index 0"
    # The other indexes were terminated, not counted as failures.
    assert job["status"]["completedIndexes"] == "0" and job["status"]["succeeded"] == 1
    assert job["status"].get("failed", 0) == 0 and job["status"].get("active", 0) == 0
    assert live(pods, "leader") == []
    assert status_column(cluster, ns, "leader") == "Complete"


def test_active_deadline_fails_the_job(cluster, ns, pods):
    k = cluster.kubectl
    k("create", "-n", ns, "-f", "-", input=job_json("slow", activeDeadlineSeconds=2, backoffLimit=6))
    eventually(lambda: live(pods, "slow"), message="a running pod")
    k("wait", "--for=condition=failed", "job/slow", "-n", ns, "--timeout=30s")
    conds = conditions(cluster, ns, "slow")
    for kind in ("FailureTarget", "Failed"):
        assert conds[kind]["reason"] == "DeadlineExceeded"
        assert conds[kind]["message"] == "Job was active longer than specified deadline"
    assert live(pods, "slow") == []
    status = cluster.get(ns, "job", "slow")["status"]
    assert status.get("active", 0) == 0 and status["failed"] == 1

    def events():
        return [(e["type"], e["message"]) for e in cluster.get(ns, "events")["items"]
                if e["involvedObject"]["name"] == "slow" and e["reason"] == "DeadlineExceeded"]
    # Events are written in the background: the event may follow the condition.
    eventually(lambda: events() == [("Warning", "Job was active longer than specified deadline")],
               message="one DeadlineExceeded event")
    assert status_column(cluster, ns, "slow") == "Failed"


def test_suspend_and_resume(cluster, ns, pods):
    k = cluster.kubectl
    k("create", "-n", ns, "-f", "-", input=job_json("batch", completions=1, parallelism=1))
    first = eventually(lambda: live(pods, "batch"), message="a running pod")[0]["metadata"]["name"]
    k("patch", "job", "batch", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    eventually(lambda: conditions(cluster, ns, "batch").get("Suspended", {}).get("status") == "True",
               message="Suspended condition")
    eventually(lambda: live(pods, "batch") == [], message="active pods removed")
    cond = conditions(cluster, ns, "batch")["Suspended"]
    assert (cond["reason"], cond["message"]) == ("JobSuspended", "Job suspended")
    assert cluster.get(ns, "job", "batch")["status"].get("active", 0) == 0
    assert status_column(cluster, ns, "batch") == "Suspended"

    k("patch", "job", "batch", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    second = eventually(lambda: live(pods, "batch"), message="a pod after resuming")[0]
    assert second["metadata"]["name"] != first

    def resumed():
        cond = conditions(cluster, ns, "batch")["Suspended"]
        return (cond["status"], cond["reason"], cond["message"]) == \
            ("False", "JobResumed", "Job resumed")
    # As upstream, the pod is created before the status says the Job resumed.
    eventually(resumed, message="the Suspended condition False (JobResumed)")
    pods.finish(second["metadata"]["name"])
    k("wait", "--for=condition=complete", "job/batch", "-n", ns, "--timeout=30s")

    def events():
        return [(e["reason"], e["message"]) for e in cluster.get(ns, "events")["items"]
                if e["involvedObject"]["name"] == "batch"]
    eventually(lambda: {("Suspended", "Job suspended"), ("Resumed", "Job resumed")}
               <= set(events()), message="Suspended and Resumed events")
