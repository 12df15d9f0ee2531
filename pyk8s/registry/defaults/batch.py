"""Defaults of batch/v1, as ``pkg/apis/batch/v1/defaults.go``, and the Job selector
generation of upstream's Job strategy.

Role: Job and CronJob defaults (the job template of a CronJob only gets pod
template defaults, as upstream); ``generate_job_selector`` is upstream's
``generateSelector`` that the Job strategy runs in PrepareForCreate, exported for
pyk8s' Job strategy because validation expects its labels.
Invariant: only unset fields are filled; v1.32 gates as shipped
(JobPodReplacementPolicy on).
"""
from __future__ import annotations

from . import core

MAX_INT32 = 2147483647
LEGACY_NAME, NAME = "job-name", "batch.kubernetes.io/job-name"
LEGACY_UID, UID = "controller-uid", "batch.kubernetes.io/controller-uid"


def job(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    template = spec.get("template")
    labels = core.mapping(core.mapping(template).get("metadata")).get("labels")
    meta = core.struct(obj, "metadata")
    if isinstance(labels, dict) and not meta.get("labels"):
        meta["labels"] = dict(labels)
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    for rule in core.items(core.mapping(spec.get("podFailurePolicy")).get("rules")):
        for pattern in core.items(core.mapping(rule).get("onPodConditions")):
            if isinstance(pattern, dict) and not pattern.get("status"):
                pattern["status"] = "True"
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = (
            "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed")
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False
    core.template(template)


def cron_job(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict) and isinstance(job_template.get("spec"), dict):
        core.template(job_template["spec"].get("template"))


def generate_job_selector(obj: dict) -> None:
    """Upstream's Job PrepareForCreate ``generateSelector``: label the template with
    the job's name and uid and select on the uid, unless ``manualSelector`` is true.

    Needs ``metadata.uid`` (set by the store before PrepareForCreate); labels the
    user already set are left alone, so a conflict surfaces in validation.
    """
    spec = core.struct(obj, "spec")
    if spec.get("manualSelector") is True:
        return
    meta = core.mapping(obj.get("metadata"))
    name, uid = str(meta.get("name") or ""), str(meta.get("uid") or "")
    template = spec.get("template")
    if not isinstance(template, dict):
        template = spec["template"] = {}
    tmeta = template.get("metadata")
    if not isinstance(tmeta, dict):
        tmeta = template["metadata"] = {}
    labels = tmeta.get("labels")
    if not isinstance(labels, dict):
        labels = tmeta["labels"] = {}
    for key in (LEGACY_NAME, NAME):
        labels.setdefault(key, name)
    for key in (LEGACY_UID, UID):
        labels.setdefault(key, uid)
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match = selector.get("matchLabels")
    if not isinstance(match, dict):
        match = selector["matchLabels"] = {}
    match.setdefault(UID, uid)


KINDS = {"Job": job, "CronJob": cron_job}
