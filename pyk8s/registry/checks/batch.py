"""batch/v1 checks: Job and CronJob.

Role: upstream's ``ValidateJob`` (generated selector and labels, spec bounds,
indexed completion, pod failure and success policies, pod replacement policy,
restart policy of the template), the Job update rules (immutable selector,
template, completion mode ...), and ``ValidateCronJobCreate``/``Update`` (schedule
syntax, time zone, concurrency policy, job template).

Invariants:
- A Job without ``manualSelector: true`` is expected to carry the selector and
  labels the Job strategy generates on create (``generate_job_selector`` in
  ``registry/defaults/batch.py``), as upstream validates after PrepareForCreate.
- v1.32 gates: ElasticIndexedJob on (GA), prefixed job labels required on create.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Mapping

from ...api import validation as names
from .cron import load_location, parse_error
from .field import (OMIT, FieldError, duplicate, go_struct, immutable, invalid, nonnegative,
                    not_supported, required, too_long_max_length, too_many)
from .meta import (SUBDOMAIN, as_selector, label_selector, selector_mismatch, shown_selector,
                   standard_meta)
from .pods import template_spec

LEGACY_UID, LEGACY_NAME = "controller-uid", "job-name"
UID_LABEL, NAME_LABEL = "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name"
ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]
CONDITION_STATUSES = ["False", "True", "Unknown"]
MAX_PARALLELISM_INDEXED = 100000
MAX_FAILED_INDEXES = 100_000
COMPLETIONS_SOFT_LIMIT = 100_000
PARALLELISM_HIGH_COMPLETIONS = 10_000
_TZ_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}\Z")


def _go_quoted_list(values: list[str]) -> str:
    return "[" + " ".join(names.go_quote(v) for v in values) + "]"


def _has_label(meta: Mapping[str, Any], path: str, key: str, expected: str) -> list[FieldError]:
    labels = meta.get("labels") or {}
    if key not in labels:
        return [required(f"{path}.labels[{key}]", f"must be '{expected}'")]
    if labels[key] != expected:
        return [invalid(f"{path}.labels[{key}]", labels, f"must be '{expected}'")]
    return []


def generated_selector(job: Mapping[str, Any], prefixed: bool) -> list[FieldError]:
    spec = job.get("spec") or {}
    if spec.get("manualSelector") is True or spec.get("selector") is None:
        return []
    meta = job.get("metadata") or {}
    uid, name = str(meta.get("uid") or ""), str(meta.get("name") or "")
    errs: list[FieldError] = []
    if not uid:
        errs.append(required("metadata.uid"))
    tmeta = (spec.get("template") or {}).get("metadata") or {}
    path = "spec.template.metadata"
    errs += _has_label(tmeta, path, LEGACY_UID, uid)
    errs += _has_label(tmeta, path, LEGACY_NAME, name)
    expected = {LEGACY_UID: uid, LEGACY_NAME: name}
    if prefixed:
        errs += _has_label(tmeta, path, UID_LABEL, uid)
        errs += _has_label(tmeta, path, NAME_LABEL, name)
        expected.update({UID_LABEL: uid, NAME_LABEL: name})
    parsed = as_selector(spec["selector"])
    if parsed is not None and not parsed.matches(expected):
        errs.append(invalid("spec.selector", spec["selector"], "`selector` not auto-generated",
                            shown=shown_selector(spec["selector"])))
    return errs


def _pod_failure_policy(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
    errs: list[FieldError] = []
    if len(rules) > 20:
        errs.append(too_many(f"{path}.rules", len(rules), 20))
    template = (spec.get("template") or {}).get("spec") or {}
    containers = {c.get("name") for c in (template.get("containers") or [])
                  + (template.get("initContainers") or [])}
    for i, rule in enumerate(rules):
        rp = f"{path}.rules[{i}]"
        action = rule.get("action") or ""
        if not action:
            errs.append(required(f"{rp}.action", f"valid values: {_go_quoted_list(ACTIONS)}"))
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                errs.append(invalid(f"{rp}.action", action,
                                    "requires the backoffLimitPerIndex to be set"))
        elif action not in ACTIONS:
            errs.append(not_supported(f"{rp}.action", action, ACTIONS))
        codes = rule.get("onExitCodes")
        if codes is not None:
            errs += _on_exit_codes(codes, f"{rp}.onExitCodes", containers)
        patterns = rule.get("onPodConditions") or []
        if len(patterns) > 20:
            errs.append(too_many(f"{rp}.onPodConditions", len(patterns), 20))
        for j, pattern in enumerate(patterns):
            pp = f"{rp}.onPodConditions[{j}]"
            ctype = pattern.get("type") or ""
            errs += [invalid(f"{pp}.type", ctype, m) for m in names.is_qualified_name(ctype)]
            status = pattern.get("status") or ""
            if not status:
                errs.append(required(f"{pp}.status",
                                     f"valid values: {_go_quoted_list(CONDITION_STATUSES)}"))
            elif status not in CONDITION_STATUSES:
                errs.append(not_supported(f"{pp}.status", status, CONDITION_STATUSES))
        if codes is not None and patterns:
            errs.append(invalid(rp, OMIT, "specifying both OnExitCodes and OnPodConditions is "
                                "not supported"))
        if codes is None and not patterns:
            errs.append(invalid(rp, OMIT, "specifying one of OnExitCodes and OnPodConditions is "
                                "required"))
    return errs


def _on_exit_codes(codes: Mapping[str, Any], path: str, containers: set) -> list[FieldError]:
    errs: list[FieldError] = []
    op = codes.get("operator") or ""
    if not op:
        errs.append(required(f"{path}.operator", f"valid values: {_go_quoted_list(['In', 'NotIn'])}"))
    elif op not in ("In", "NotIn"):
        errs.append(not_supported(f"{path}.operator", op, ["In", "NotIn"]))
    name = codes.get("containerName")
    if name is not None and name not in containers:
        errs.append(invalid(f"{path}.containerName", name,
                            "must be one of the container or initContainer names in the pod template"))
    values = codes.get("values") or []
    if not values:
        errs.append(invalid(f"{path}.values", values, "at least one value is required",
                            shown="[]int32(nil)" if codes.get("values") is None else "[]int32{}"))
    elif len(values) > 255:
        errs.append(too_many(f"{path}.values", len(values), 255))
    seen: set[int] = set()
    for j, value in enumerate(values):
        if op == "In" and value == 0:
            errs.append(invalid(f"{path}.values[{j}]", value, "must not be 0 for the In operator"))
        if value in seen:
            errs.append(duplicate(f"{path}.values[{j}]", value))
        seen.add(value)
    if any(a > b for a, b in zip(values, values[1:])):
        errs.append(invalid(f"{path}.values", values, "must be ordered"))
    return errs


def _indexes_error(text: str, completions: int) -> str | None:
    last = None
    for interval in text.split(","):
        limits = interval.split("-")
        if len(limits) > 2:
            return (f"the fragment {names.go_quote(interval)} violates the requirement that an "
                    "index interval can have at most two parts separated by '-'")
        bounds = []
        for part in limits:
            if not re.match(r"^[+-]?[0-9]+\Z", part):
                return f"cannot convert string to integer for index: {names.go_quote(part)}"
            if int(part) >= completions:
                return f"too large index: {names.go_quote(part)}"
            bounds.append(int(part))
        if len(bounds) == 2 and bounds[0] >= bounds[1]:
            return f"non-increasing order, previous: {bounds[0]}, current: {bounds[1]}"
        if last is not None and last >= bounds[0]:
            return f"non-increasing order, previous: {last}, current: {bounds[0]}"
        last = bounds[-1]
    return None


def _success_policy(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    rules = (spec.get("successPolicy") or {}).get("rules") or []
    errs: list[FieldError] = []
    if not rules:
        errs.append(required(f"{path}.rules", "at least one rules must be specified when the "
                             "successPolicy is specified"))
    if len(rules) > 20:
        errs.append(too_many(f"{path}.rules", len(rules), 20))
    completions = spec.get("completions") or 0
    for i, rule in enumerate(rules):
        rp = f"{path}.rules[{i}]"
        count, indexes = rule.get("succeededCount"), rule.get("succeededIndexes")
        if count is None and indexes is None:
            errs.append(required(rp, "at least one of succeededCount or succeededIndexes must be "
                                 "specified"))
        if indexes is not None:
            problem = _indexes_error(indexes, completions) if indexes else None
            if problem:
                errs.append(invalid(f"{rp}.succeededIndexes", indexes,
                                    f"error parsing succeededIndexes: {problem}"))
        if count is not None:
            errs += nonnegative(count, f"{rp}.succeededCount")
            if count > completions:
                errs.append(invalid(f"{rp}.succeededCount", count, f"must be less than or equal "
                                    f"to {completions} (the number of specified completions)"))
    return errs


def job_spec_body(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    """``validateJobSpec`` (shared by Jobs and CronJob job templates)."""
    errs: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished", "backoffLimitPerIndex"):
        if spec.get(key) is not None:
            errs += nonnegative(spec[key], f"{path}.{key}")
    per_index, max_failed = spec.get("backoffLimitPerIndex"), spec.get("maxFailedIndexes")
    if max_failed is not None:
        errs += nonnegative(max_failed, f"{path}.maxFailedIndexes")
        if per_index is None:
            errs.append(required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    managed = spec.get("managedBy")
    if managed is not None:
        errs += _domain_prefixed_path(managed, f"{path}.managedBy")
        if len(managed) > 63:
            errs.append(too_long_max_length(f"{path}.managedBy", managed, 63))
    errs += _completion_mode(spec, path)
    if spec.get("podFailurePolicy") is not None:
        errs += _pod_failure_policy(spec, f"{path}.podFailurePolicy")
    if spec.get("successPolicy") is not None:
        if spec.get("completionMode") != "Indexed":
            errs.append(invalid(f"{path}.successPolicy", spec["successPolicy"],
                                "requires indexed completion mode",
                                shown=go_struct("batch.SuccessPolicy", spec["successPolicy"])))
        else:
            errs += _success_policy(spec, f"{path}.successPolicy")
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        if spec.get("podFailurePolicy") is not None:
            if replacement != "Failed":
                errs.append(not_supported(f"{path}.podReplacementPolicy", replacement, ["Failed"]))
        elif replacement not in ("Failed", "TerminatingOrFailed"):
            errs.append(not_supported(f"{path}.podReplacementPolicy", replacement,
                                      ["Failed", "TerminatingOrFailed"]))
    template = spec.get("template") or {}
    errs += template_spec(template, f"{path}.template")
    restart = (template.get("spec") or {}).get("restartPolicy") or ""
    rp = f"{path}.template.spec.restartPolicy"
    if restart in ("Always", ""):
        errs.append(required(rp, 'valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        errs.append(not_supported(rp, restart, ["OnFailure", "Never"]))
    elif spec.get("podFailurePolicy") is not None and restart != "Never":
        errs.append(invalid(rp, restart, 'only "Never" is supported when podFailurePolicy is specified'))
    return errs


def _domain_prefixed_path(value: str, path: str) -> list[FieldError]:
    if not value:
        return [required(path)]
    host, sep, rest = value.partition("/")
    if not sep or not host or not rest:
        return [invalid(path, value, "must be a domain-prefixed path (such as \"acme.io/foo\")")]
    errs = [invalid(path, host, m) for m in names.is_dns1123_subdomain(host)]
    if not re.match(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+\Z", rest):
        errs.append(invalid(path, rest, names.regex_error(
            "Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+")))
    return errs


def _completion_mode(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    mode = spec.get("completionMode")
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    per_index, max_failed = spec.get("backoffLimitPerIndex"), spec.get("maxFailedIndexes")
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            errs.append(not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
        if mode == "Indexed":
            if completions is None:
                errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
            if parallelism is not None and parallelism > MAX_PARALLELISM_INDEXED:
                errs.append(invalid(f"{path}.parallelism", parallelism, "must be less than or "
                                    f"equal to {MAX_PARALLELISM_INDEXED} when completion mode is "
                                    "Indexed"))
            if completions is not None and max_failed is not None and max_failed > completions:
                errs.append(invalid(f"{path}.maxFailedIndexes", max_failed,
                                    "must be less than or equal to completions"))
            if max_failed is not None and max_failed > MAX_FAILED_INDEXES:
                errs.append(invalid(f"{path}.maxFailedIndexes", max_failed,
                                    f"must be less than or equal to {MAX_FAILED_INDEXES}"))
    if mode in (None, "NonIndexed"):
        if per_index is not None:
            errs.append(invalid(f"{path}.backoffLimitPerIndex", per_index,
                                "requires indexed completion mode"))
        if max_failed is not None:
            errs.append(invalid(f"{path}.maxFailedIndexes", max_failed,
                                "requires indexed completion mode"))
    return errs


def job_spec(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    """``ValidateJobSpec``."""
    errs = job_spec_body(spec, path)
    if spec.get("selector") is None:
        errs.append(required(f"{path}.selector"))
    else:
        errs += label_selector(spec["selector"], f"{path}.selector")
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    return errs + selector_mismatch(spec.get("selector"), template_labels,
                                    f"{path}.template.metadata.labels", skip_empty=False)


def _validate_job_object(job: Mapping[str, Any], prefixed: bool) -> list[FieldError]:
    errs = standard_meta(job, None, SUBDOMAIN, True)
    errs += generated_selector(job, prefixed)
    spec = job.get("spec") or {}
    errs += job_spec(spec, "spec")
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed" and completions:
        name = (job.get("metadata") or {}).get("name") or ""
        hostname = f"{name}-{completions - 1}"
        if names.is_dns1123_label(hostname):
            errs.append(invalid("metadata.name", name, "will not able to create pod with "
                                f"invalid DNS label: {hostname}"))
    return errs


def validate_job(job: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    if old is None:
        return _validate_job_object(job, True)
    old_labels = (((old.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels") or {}
    errs = _validate_job_object(job, UID_LABEL in old_labels)
    errs += standard_meta(job, old, SUBDOMAIN, True)
    return errs + _job_spec_update(job, old)


def _job_spec_update(job: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    spec, old_spec = job.get("spec") or {}, old.get("spec") or {}
    errs = job_spec(spec, "spec")
    if spec.get("completionMode") == "Indexed":
        if spec.get("completions") != old_spec.get("completions") and \
                spec.get("completions") is not None and \
                spec.get("completions") != spec.get("parallelism"):
            errs.append(invalid("spec.completions", spec["completions"],
                                "can only be modified in tandem with spec.parallelism"))
    else:
        errs += immutable(spec.get("completions"), old_spec.get("completions"), "spec.completions")
    errs += immutable(spec.get("selector"), old_spec.get("selector"), "spec.selector",
                      shown=shown_selector(spec.get("selector")))
    errs += _template_update(spec, old_spec, old)
    errs += immutable(spec.get("completionMode"), old_spec.get("completionMode"),
                      "spec.completionMode")
    errs += immutable(spec.get("podFailurePolicy"), old_spec.get("podFailurePolicy"),
                      "spec.podFailurePolicy",
                      shown=go_struct("batch.PodFailurePolicy", spec.get("podFailurePolicy")))
    for key in ("backoffLimitPerIndex", "managedBy"):
        errs += immutable(spec.get(key), old_spec.get(key), f"spec.{key}")
    errs += immutable(spec.get("successPolicy"), old_spec.get("successPolicy"),
                      "spec.successPolicy",
                      shown=go_struct("batch.SuccessPolicy", spec.get("successPolicy")))
    return errs


def _template_update(spec: Mapping[str, Any], old_spec: Mapping[str, Any],
                     old: Mapping[str, Any]) -> list[FieldError]:
    template = spec.get("template") or {}
    old_template = copy.deepcopy(old_spec.get("template") or {})
    suspended = old_spec.get("suspend") is True
    not_started = not (old.get("status") or {}).get("startTime")
    if suspended and not_started:
        tspec, ospec = template.get("spec") or {}, old_template.setdefault("spec", {})
        affinity, old_affinity = tspec.get("affinity"), ospec.get("affinity")
        if affinity is None and old_affinity is not None:
            rest = {k: v for k, v in old_affinity.items() if k != "nodeAffinity"}
            ospec["affinity"] = rest or None
        elif affinity is not None:
            ospec["affinity"] = {**(old_affinity or {}), "nodeAffinity": affinity.get("nodeAffinity")}
        for key in ("nodeSelector", "tolerations", "schedulingGates"):
            ospec[key] = tspec.get(key)
        ometa = old_template.setdefault("metadata", {})
        tmeta = template.get("metadata") or {}
        ometa["annotations"], ometa["labels"] = tmeta.get("annotations"), tmeta.get("labels")
    return immutable(template, old_template, "spec.template",
                     shown=go_struct("core.PodTemplateSpec", template))


# --- CronJob ------------------------------------------------------------------------

def job_template(tmpl: Mapping[str, Any], path: str) -> list[FieldError]:
    """``ValidateJobTemplateSpec``."""
    spec = tmpl.get("spec") or {}
    errs = job_spec_body(spec, f"{path}.spec")
    if spec.get("selector") is not None:
        errs.append(invalid(f"{path}.spec.selector", spec["selector"],
                            "`selector` will be auto-generated",
                            shown=shown_selector(spec["selector"])))
    if spec.get("manualSelector") is True:
        errs.append(not_supported(f"{path}.spec.manualSelector", True, ["nil", "false"]))
    return errs


def _time_zone(tz: str | None, path: str) -> list[FieldError]:
    if tz is None:
        return []
    if not tz:
        return [invalid(path, tz, "timeZone must be nil or non-empty string")]
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.match(part):
            return [invalid(path, tz, f"unknown time zone {tz}")]
    errs = []
    if tz.lower() == "local":
        errs.append(invalid(path, tz, "timeZone must be an explicit time zone as defined in "
                            "https://www.iana.org/time-zones"))
    problem = load_location(tz)
    if problem is not None:
        errs.append(invalid(path, tz, problem))
    return errs


def cron_job_spec(spec: Mapping[str, Any], old_spec: Mapping[str, Any] | None) -> list[FieldError]:
    errs: list[FieldError] = []
    schedule = spec.get("schedule") or ""
    if not schedule:
        errs.append(required("spec.schedule"))
    else:
        problem = parse_error(schedule)
        if problem is not None:
            errs.append(invalid("spec.schedule", schedule, problem))
        allow_tz = old_spec is not None and "TZ" in (old_spec.get("schedule") or "")
        if allow_tz and "TZ" in schedule and spec.get("timeZone") is not None:
            errs.append(invalid("spec.schedule", schedule,
                                "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
        elif not allow_tz and "TZ" in schedule:
            errs.append(invalid("spec.schedule", schedule,
                                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    if spec.get("startingDeadlineSeconds") is not None:
        errs += nonnegative(spec["startingDeadlineSeconds"], "spec.startingDeadlineSeconds")
    if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
        errs += _time_zone(spec.get("timeZone"), "spec.timeZone")
    policy = spec.get("concurrencyPolicy") or ""
    if not policy:
        errs.append(required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        errs.append(not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"]))
    errs += job_template(spec.get("jobTemplate") or {}, "spec.jobTemplate")
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        if spec.get(key) is not None:
            errs += nonnegative(spec[key], f"spec.{key}")
    return errs


def validate_cron_job(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    if old is not None:
        errs = standard_meta(obj, old, SUBDOMAIN, True)
        return errs + cron_job_spec(obj.get("spec") or {}, old.get("spec") or {})
    errs = standard_meta(obj, None, SUBDOMAIN, True)
    errs += cron_job_spec(obj.get("spec") or {}, None)
    name = (obj.get("metadata") or {}).get("name") or ""
    if len(name) > 52:
        errs.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    return errs
