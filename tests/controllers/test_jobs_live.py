"""Jobs and CronJobs through the API: completion, failure, kubectl wait, create --from."""
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
    reasons = [e["reason"] for e in cluster.get(ns, "events")["items"]
               if e["involvedObject"]["name"] == "pi"]
    assert "SuccessfulCreate" in reasons and "Completed" in reasons


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
    minutes = int(name.split("-")[1])
    assert minutes * 60 % 60 == 0 and abs(minutes * 60 - time.time()) < 120
    cj = eventually(lambda: cluster.get(ns, "cronjob", "tick")["status"].get("active") and
                    cluster.get(ns, "cronjob", "tick"), message="active job in status")
    assert cj["status"]["active"][0]["name"] == name and cj["status"]["lastScheduleTime"]
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
