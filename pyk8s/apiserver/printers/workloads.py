"""Printers for workload kinds: pods and what runs them, as upstream's printers.go.

Role: column definitions and row cells for Pod, PodTemplate, ReplicationController,
ReplicaSet, Deployment, DaemonSet, StatefulSet, Job, CronJob, ControllerRevision,
HorizontalPodAutoscaler (v1 and v2 shapes), PodDisruptionBudget and Scale. Pure
functions of the object and ``now``.

Invariants:

- rows are always the wide rows (the API server prints with ``Wide: true``; kubectl
  drops priority-1 columns itself), so a row has one cell per column;
- the pod STATUS cell follows upstream's reason precedence: pod reason, scheduling
  gate, init container state (``Init:N/M``, ``Init:<reason>``), the last container's
  waiting/terminated reason, ``Completed`` turned back into ``Running``/``NotReady``
  while a container still runs, then ``Terminating``/``Unknown`` on deletion;
- fields a v1 object may omit read as upstream's defaults (replicas 1).
"""
from __future__ import annotations

from datetime import datetime

from pyk8s.api.selectors import format_label_selector

from .common import (
    AGE, CONTAINERS, IMAGES, NAME, NONE, UNKNOWN, UNSET, Column, Printer, age, bool_ptr, deleting,
    dig, doc, format_labels, human_duration, int_or_string, layout_containers,
    meta, name, parse_time, quantity_string, selector_string, since, spec, status,
)

# -- pods --------------------------------------------------------------------------

_POD_COLUMNS = (
    NAME,
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column("Restarts", description="The number of times the containers in this pod have been "
           "restarted and when the last container in this pod has restarted."),
    AGE,
    Column("IP", priority=1, description=doc("PodStatus.podIP")),
    Column("Node", priority=1, description=doc("PodSpec.nodeName")),
    Column("Nominated Node", priority=1, description=doc("PodStatus.nominatedNodeName")),
    Column("Readiness Gates", priority=1, description=doc("PodSpec.readinessGates")),
)


def _restartable(container: dict | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"


def _condition_true(conditions: list | None, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions or [])


def _later(current: datetime | None, state: dict) -> datetime | None:
    finished = parse_time(dig(state, "lastState", "terminated", "finishedAt"))
    if finished is not None and (current is None or current < finished):
        return finished
    return current


def _terminated_reason(terminated: dict, prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + terminated["reason"]
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


class _PodTally:
    """The counters printPod accumulates while it walks the container statuses."""

    def __init__(self, pod: dict):
        self.pod, self.sp, self.st = pod, spec(pod), status(pod)
        self.reason = self.st.get("reason") or self.st.get("phase", "")
        self.total = len(self.sp.get("containers") or [])
        self.ready = self.restarts = self.sidecar_restarts = 0
        self.last_restart: datetime | None = None
        self.last_sidecar_restart: datetime | None = None

    def walk_init(self) -> bool:
        """Init container pass; True while the pod is still initializing."""
        specs = {c.get("name"): c for c in self.sp.get("initContainers") or []}
        self.total += sum(1 for c in specs.values() if _restartable(c))
        for index, cs in enumerate(self.st.get("initContainerStatuses") or []):
            self.restarts += cs.get("restartCount", 0)
            self.last_restart = _later(self.last_restart, cs)
            sidecar = _restartable(specs.get(cs.get("name")))
            if sidecar:
                self.sidecar_restarts += cs.get("restartCount", 0)
                self.last_sidecar_restart = _later(self.last_sidecar_restart, cs)
            state = cs.get("state") or {}
            terminated, waiting = state.get("terminated"), state.get("waiting")
            if terminated is not None and terminated.get("exitCode", 0) == 0:
                continue
            if sidecar and cs.get("started"):
                self.ready += 1 if cs.get("ready") else 0
                continue
            if terminated is not None:
                self.reason = _terminated_reason(terminated, "Init:")
            elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
                self.reason = "Init:" + waiting["reason"]
            else:
                self.reason = f"Init:{index}/{len(specs)}"
            return True
        return False

    def walk_containers(self) -> None:
        self.restarts, self.last_restart = self.sidecar_restarts, self.last_sidecar_restart
        running = False
        for cs in reversed(self.st.get("containerStatuses") or []):
            self.restarts += cs.get("restartCount", 0)
            self.last_restart = _later(self.last_restart, cs)
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                self.reason = waiting["reason"]
            elif terminated is not None:
                self.reason = _terminated_reason(terminated)
            elif cs.get("ready") and state.get("running") is not None:
                running = True
                self.ready += 1
        # A pod whose last container completed still runs while another container does.
        if self.reason == "Completed" and running:
            ready = _condition_true(self.st.get("conditions"), "Ready")
            self.reason = "Running" if ready else "NotReady"


def pod_status_cells(pod: dict, now: datetime) -> tuple[str, str, str]:
    """READY, STATUS and RESTARTS of one pod, exactly as upstream's printPod."""
    tally = _PodTally(pod)
    st = tally.st
    for cond in st.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            tally.reason = "SchedulingGated"
    initializing = tally.walk_init()
    if not initializing or _condition_true(st.get("conditions"), "Initialized"):
        tally.walk_containers()
    if deleting(pod) and st.get("reason") == "NodeLost":
        tally.reason = "Unknown"
    elif deleting(pod) and st.get("phase") not in ("Failed", "Succeeded"):
        tally.reason = "Terminating"
    restarts = str(tally.restarts)
    if tally.restarts and tally.last_restart is not None:
        restarts = f"{tally.restarts} ({human_duration(now - tally.last_restart)} ago)"
    return f"{tally.ready}/{tally.total}", tally.reason, restarts


def _pod_row(pod: dict, now: datetime) -> list:
    ready, reason, restarts = pod_status_cells(pod, now)
    sp, st = spec(pod), status(pod)
    ips = st.get("podIPs") or []
    pod_ip = (ips[0].get("ip") if ips else st.get("podIP")) or NONE
    gates = sp.get("readinessGates") or []
    readiness = NONE
    if gates:
        conditions = {}
        for cond in st.get("conditions") or []:
            conditions.setdefault(cond.get("type"), cond.get("status"))
        true = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        readiness = f"{true}/{len(gates)}"
    return [name(pod), ready, reason, restarts, age(pod, now), pod_ip,
            sp.get("nodeName") or NONE, st.get("nominatedNodeName") or NONE, readiness]


def _pod_conditions(pod: dict) -> list:
    phase = status(pod).get("phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod failed."}]
    return []


# -- controllers -------------------------------------------------------------------

def _template_containers(template: dict | None) -> tuple[str, str]:
    return layout_containers(dig(template, "spec", "containers", default=[]))


def _pod_template_row(obj: dict, now: datetime) -> list:
    template = obj.get("template") or {}
    names, images = _template_containers(template)
    return [name(obj), names, images, format_labels(dig(template, "metadata", "labels"))]


def _replication_controller_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    names, images = _template_containers(sp.get("template"))
    return [name(obj), sp.get("replicas", 1), st.get("replicas", 0), st.get("readyReplicas", 0),
            age(obj, now), names, images, format_labels(sp.get("selector"))]


def _replica_set_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    names, images = _template_containers(sp.get("template"))
    return [name(obj), sp.get("replicas", 1), st.get("replicas", 0), st.get("readyReplicas", 0),
            age(obj, now), names, images, format_label_selector(sp.get("selector"))]


def _deployment_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    names, images = _template_containers(sp.get("template"))
    selector = selector_string(sp.get("selector"))
    return [name(obj), f"{st.get('readyReplicas', 0)}/{sp.get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), age(obj, now),
            names, images, "<invalid>" if selector is None else selector]


def _daemon_set_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    names, images = _template_containers(sp.get("template"))
    return [name(obj), st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0),
            st.get("numberAvailable", 0),
            format_labels(dig(sp, "template", "spec", "nodeSelector")), age(obj, now),
            names, images, format_label_selector(sp.get("selector"))]


def _stateful_set_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    names, images = _template_containers(sp.get("template"))
    return [name(obj), f"{st.get('readyReplicas', 0)}/{sp.get('replicas', 1)}", age(obj, now),
            names, images]


def _job_status(obj: dict) -> str:
    conditions = status(obj).get("conditions") or []

    def has(kind: str) -> bool:
        # upstream's hasJobCondition answers for the first condition of that type.
        for cond in conditions:
            if cond.get("type") == kind:
                return cond.get("status") == "True"
        return False

    if has("Complete"):
        return "Complete"
    if has("Failed"):
        return "Failed"
    if deleting(obj):
        return "Terminating"
    if has("Suspended"):
        return "Suspended"
    if has("FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    succeeded = st.get("succeeded", 0)
    if sp.get("completions") is not None:
        completions = f"{succeeded}/{sp['completions']}"
    elif (sp.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {sp['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration((end or now) - start)
    names, images = _template_containers(sp.get("template"))
    return [name(obj), _job_status(obj), completions, duration, age(obj, now), names, images,
            format_label_selector(sp.get("selector"))]


def _cron_job_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    job_spec = dig(sp, "jobTemplate", "spec", default={})
    names, images = _template_containers(job_spec.get("template"))
    last = since(st["lastScheduleTime"], now) if st.get("lastScheduleTime") else NONE
    return [name(obj), sp.get("schedule", ""), sp.get("timeZone") or NONE,
            bool_ptr(sp.get("suspend")), len(st.get("active") or []), last, age(obj, now),
            names, images, format_label_selector(job_spec.get("selector"))]


def _controller_revision_row(obj: dict, now: datetime) -> list:
    controller = NONE
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            api_version, kind = ref.get("apiVersion", ""), ref.get("kind", "")
            group = api_version.split("/")[0] if "/" in api_version else ""
            group_kind = f"{kind}.{group}" if group else kind
            controller = f"{group_kind.lower()}/{ref.get('name', '')}" if group_kind else ref.get("name", "")
            break
    return [name(obj), controller, obj.get("revision", 0), age(obj, now)]


# -- autoscaling and disruption ----------------------------------------------------

def _hpa_metrics(sp: dict, st: dict) -> tuple[list, list]:
    """The v2 metric specs and statuses; a v1 object's CPU target converted as upstream."""
    if "metrics" in sp or "targetCPUUtilizationPercentage" not in sp:
        return sp.get("metrics") or [], st.get("currentMetrics") or []
    specs = [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": sp["targetCPUUtilizationPercentage"]}}}]
    statuses = []
    if st.get("currentCPUUtilizationPercentage") is not None:
        statuses = [{"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": st["currentCPUUtilizationPercentage"]}}}]
    return specs, statuses


def _q(value: object) -> str:
    # A nil *Quantity prints as "<nil>" in Go.
    return "<nil>" if value is None else quantity_string(value)


def _metric(spec_: dict, status_: dict | None) -> str:
    kind = spec_.get("type")
    field = {"External": "external", "Pods": "pods", "Object": "object", "Resource": "resource",
             "ContainerResource": "containerResource"}.get(kind)
    if field is None:
        return "<unknown type>"
    source, current = spec_.get(field) or {}, (status_ or {}).get(field)
    target = source.get("target") or {}
    now_value = (current or {}).get("current") or {}
    prefix = f"{source.get('name', '')}: " if kind in ("Resource", "ContainerResource") else ""
    if kind == "Pods":
        return f"{_q(now_value.get('averageValue')) if current is not None else UNKNOWN}/{_q(target.get('averageValue'))}"
    if target.get("averageValue") is not None:
        known = current is not None and (kind in ("Resource", "ContainerResource") or now_value.get("averageValue") is not None)
        shown = _q(now_value.get("averageValue")) if known else UNKNOWN
        suffix = " (avg)" if kind in ("External", "Object") else ""
        return f"{prefix}{shown}/{_q(target['averageValue'])}{suffix}"
    if kind in ("External", "Object"):
        shown = _q(now_value.get("value")) if current is not None else UNKNOWN
        return f"{shown}/{_q(target.get('value'))}"
    shown = UNKNOWN
    if current is not None and now_value.get("averageUtilization") is not None:
        shown = f"{now_value['averageUtilization']}%"
    wanted = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None else "<auto>"
    return f"{prefix}{shown}/{wanted}"


def format_hpa_metrics(specs: list, statuses: list) -> str:
    """upstream ``formatHPAMetrics``: at most two targets, then ``+ N more...``."""
    if not specs:
        return NONE
    items = [_metric(s, statuses[i] if i < len(statuses) else None) for i, s in enumerate(specs)]
    text = ", ".join(items[:2])
    return f"{text} + {len(items) - 2} more..." if len(items) > 2 else text


def _hpa_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    ref = sp.get("scaleTargetRef") or {}
    specs, statuses = _hpa_metrics(sp, st)
    min_pods = UNSET if sp.get("minReplicas") is None else str(sp["minReplicas"])
    return [name(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            format_hpa_metrics(specs, statuses), min_pods, sp.get("maxReplicas", 0),
            st.get("currentReplicas", 0), age(obj, now)]


def _pdb_row(obj: dict, now: datetime) -> list:
    sp = spec(obj)
    low, high = sp.get("minAvailable"), sp.get("maxUnavailable")
    return [name(obj), "N/A" if low is None else int_or_string(low),
            "N/A" if high is None else int_or_string(high),
            status(obj).get("disruptionsAllowed", 0), age(obj, now)]


def _scale_row(obj: dict, now: datetime) -> list:
    return [name(obj), spec(obj).get("replicas", 0), status(obj).get("replicas", 0), age(obj, now)]


_WIDE_TEMPLATE = (CONTAINERS, IMAGES)

PRINTERS: dict[str, Printer] = {
    "Pod": Printer(_POD_COLUMNS, _pod_row, _pod_conditions),
    "PodTemplate": Printer((
        NAME,
        Column("Containers", description="Names of each container in the template."),
        Column("Images", description="Images referenced by each container in the template."),
        Column("Pod Labels", description="The labels for the pod template."),
    ), _pod_template_row),
    "ReplicationController": Printer((
        NAME,
        Column("Desired", "integer", doc("ReplicationControllerSpec.replicas")),
        Column("Current", "integer", doc("ReplicationControllerStatus.replicas")),
        Column("Ready", "integer", doc("ReplicationControllerStatus.readyReplicas")),
        AGE, *_WIDE_TEMPLATE,
        Column("Selector", priority=1, description=doc("ReplicationControllerSpec.selector")),
    ), _replication_controller_row),
    "ReplicaSet": Printer((
        NAME,
        Column("Desired", "integer", doc("ReplicaSetSpec.replicas")),
        Column("Current", "integer", doc("ReplicaSetStatus.replicas")),
        Column("Ready", "integer", doc("ReplicaSetStatus.readyReplicas")),
        AGE, *_WIDE_TEMPLATE,
        Column("Selector", priority=1, description=doc("ReplicaSetSpec.selector")),
    ), _replica_set_row),
    "Deployment": Printer((
        NAME,
        Column("Ready", description="Number of the pod with ready state"),
        Column("Up-to-date", description=doc("DeploymentStatus.updatedReplicas")),
        Column("Available", description=doc("DeploymentStatus.availableReplicas")),
        AGE, *_WIDE_TEMPLATE,
        Column("Selector", priority=1, description=doc("DeploymentSpec.selector")),
    ), _deployment_row),
    "DaemonSet": Printer((
        NAME,
        Column("Desired", "integer", doc("DaemonSetStatus.desiredNumberScheduled")),
        Column("Current", "integer", doc("DaemonSetStatus.currentNumberScheduled")),
        Column("Ready", "integer", doc("DaemonSetStatus.numberReady")),
        Column("Up-to-date", "integer", doc("DaemonSetStatus.updatedNumberScheduled")),
        Column("Available", "integer", doc("DaemonSetStatus.numberAvailable")),
        Column("Node Selector", description=doc("PodSpec.nodeSelector")),
        AGE, *_WIDE_TEMPLATE,
        Column("Selector", priority=1, description=doc("DaemonSetSpec.selector")),
    ), _daemon_set_row),
    "StatefulSet": Printer((
        NAME, Column("Ready", description="Number of the pod with ready state"), AGE,
        *_WIDE_TEMPLATE,
    ), _stateful_set_row),
    "Job": Printer((
        NAME,
        Column("Status", description="Status of the job."),
        Column("Completions", description=doc("JobStatus.succeeded")),
        Column("Duration", description="Time required to complete the job."),
        AGE, *_WIDE_TEMPLATE,
        Column("Selector", priority=1, description=doc("JobSpec.selector")),
    ), _job_row),
    "CronJob": Printer((
        NAME,
        Column("Schedule", description=doc("CronJobSpec.schedule")),
        Column("Timezone", description=doc("CronJobSpec.timeZone")),
        Column("Suspend", "boolean", doc("CronJobSpec.suspend")),
        Column("Active", "integer", doc("CronJobStatus.active")),
        Column("Last Schedule", description=doc("CronJobStatus.lastScheduleTime")),
        AGE, *_WIDE_TEMPLATE,
        Column("Selector", priority=1, description=doc("JobSpec.selector")),
    ), _cron_job_row),
    "ControllerRevision": Printer((
        NAME,
        Column("Controller", description="Controller of the object"),
        Column("Revision", description=doc("ControllerRevision.revision")),
        AGE,
    ), _controller_revision_row),
    "HorizontalPodAutoscaler": Printer((
        NAME,
        Column("Reference", description=doc("HorizontalPodAutoscalerSpec.scaleTargetRef")),
        Column("Targets", description=doc("HorizontalPodAutoscalerSpec.metrics")),
        Column("MinPods", description=doc("HorizontalPodAutoscalerSpec.minReplicas")),
        Column("MaxPods", description=doc("HorizontalPodAutoscalerSpec.maxReplicas")),
        Column("Replicas", description=doc("HorizontalPodAutoscalerStatus.currentReplicas")),
        AGE,
    ), _hpa_row),
    "PodDisruptionBudget": Printer((
        NAME,
        Column("Min Available", description="The minimum number of pods that must be available."),
        Column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
        Column("Allowed Disruptions", "integer",
               "Calculated number of pods that may be disrupted at this time."),
        AGE,
    ), _pdb_row),
    "Scale": Printer((
        Column("Name", description=doc("ObjectMeta.name")),
        Column("Desired", "integer", doc("ScaleSpec.replicas")),
        Column("Available", "integer", doc("ScaleStatus.replicas")),
        AGE,
    ), _scale_row),
}
