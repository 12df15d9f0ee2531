"""admissionregistration.k8s.io: webhook configuration and admission policy checks.

Role: the parts of upstream's ``pkg/apis/admissionregistration/validation`` that a
schema cannot check for webhook configurations: ``matchConditions`` (at most 64;
names required, qualified and unique; the CEL expression required and compiling
to a bool, with upstream's ``compilation failed: ...`` detail) and the mutating
``reinvocationPolicy`` values. Expressions already stored in the old object are
not recompiled on update, as upstream compiles them in its lenient
"stored expressions" environment. A ValidatingAdmissionPolicy's CEL (validations'
``expression`` and ``messageExpression``, ``variables``, ``matchConditions``) must
compile the same way, with ``params`` and ``variables`` declared; type errors
against the matched resources' schemas are upstream's ``status.typeChecking``, not
creation errors.
"""
from __future__ import annotations

from typing import Any, Mapping

from ...api import cel
from ...api import validation as names
from .field import FieldError, duplicate, invalid, not_supported, required, too_many
from .meta import SUBDOMAIN
from .others import validate_metadata_only

MAX_MATCH_CONDITIONS = 64
REINVOCATION_POLICIES = ["IfNeeded", "Never"]


def _stored_expressions(old: Mapping[str, Any] | None) -> set[str]:
    out: set[str] = set()
    for hook in (old or {}).get("webhooks") or ():
        for cond in (hook or {}).get("matchConditions") or ():
            out.add(((cond or {}).get("expression") or "").strip())
    return out


def _match_conditions(conditions: list, stored: set[str], path: str,
                      policy: bool = False) -> list[FieldError]:
    errs: list[FieldError] = []
    if len(conditions) > MAX_MATCH_CONDITIONS:
        errs.append(too_many(path, len(conditions), MAX_MATCH_CONDITIONS))
    seen: set[str] = set()
    for j, cond in enumerate(conditions):
        cond = cond or {}
        at = f"{path}[{j}]"
        expression = cond.get("expression") or ""
        trimmed = expression.strip()
        if not trimmed:
            errs.append(required(f"{at}.expression"))
        elif trimmed not in stored:
            try:
                cel.compile_condition(trimmed, policy)
            except cel.CompileError as err:
                errs.append(invalid(f"{at}.expression", trimmed, err.detail))
        name = cond.get("name") or ""
        if not name:
            errs.append(required(f"{at}.name"))
        else:
            errs += [invalid(f"{at}.name", name, msg) for msg in names.is_qualified_name(name)]
            if name in seen:
                errs.append(duplicate(f"{at}.name", name))
            seen.add(name)
    return errs


def validate_webhook_configuration(obj: Mapping[str, Any], old: Mapping[str, Any] | None,
                                   mutating: bool) -> list[FieldError]:
    errs = validate_metadata_only(obj, old, SUBDOMAIN, False)
    stored = _stored_expressions(old)
    for i, hook in enumerate(obj.get("webhooks") or ()):
        hook = hook or {}
        at = f"webhooks[{i}]"
        if mutating:
            policy = hook.get("reinvocationPolicy")
            if policy and policy not in REINVOCATION_POLICIES:
                errs.append(not_supported(f"{at}.reinvocationPolicy", policy,
                                          REINVOCATION_POLICIES))
        errs += _match_conditions(hook.get("matchConditions") or [], stored,
                                  f"{at}.matchConditions")
    return errs


def _policy_expressions(policy: Mapping[str, Any] | None) -> set[str]:
    spec = (policy or {}).get("spec") or {}
    out: set[str] = set()
    for item in (spec.get("validations") or ()):
        out |= {((item or {}).get(k) or "").strip() for k in ("expression", "messageExpression")}
    for key in ("variables", "matchConditions"):
        out |= {((item or {}).get("expression") or "").strip() for item in spec.get(key) or ()}
    out |= {((item or {}).get("valueExpression") or "").strip()
            for item in spec.get("auditAnnotations") or ()}
    return out


def _compiles(path: str, expression: str, stored: set[str], boolean: bool) -> list[FieldError]:
    if expression in stored:
        return []
    try:
        if boolean:
            cel.compile_condition(expression, policy=True)
        else:
            cel.compile_expression(expression)
    except cel.CompileError as err:
        return [invalid(path, expression, err.detail)]
    return []


def validate_admission_policy(obj: Mapping[str, Any], old: Mapping[str, Any] | None
                              ) -> list[FieldError]:
    """A ValidatingAdmissionPolicy's expressions compile (upstream's
    validateValidatingAdmissionPolicySpec)."""
    errs = validate_metadata_only(obj, old, SUBDOMAIN, False)
    spec = obj.get("spec") or {}
    stored = _policy_expressions(old)
    for i, item in enumerate(spec.get("validations") or ()):
        item = item or {}
        at = f"spec.validations[{i}]"
        expression = (item.get("expression") or "").strip()
        if not expression:
            errs.append(required(f"{at}.expression"))
        else:
            errs += _compiles(f"{at}.expression", expression, stored, boolean=True)
        message = (item.get("messageExpression") or "").strip()
        if message:
            errs += _compiles(f"{at}.messageExpression", message, stored, boolean=False)
    for i, annotation in enumerate(spec.get("auditAnnotations") or ()):
        expression = ((annotation or {}).get("valueExpression") or "").strip()
        at = f"spec.auditAnnotations[{i}].valueExpression"
        if not expression:
            errs.append(required(at))
        else:
            errs += _compiles(at, expression, stored, boolean=False)
    for i, var in enumerate(spec.get("variables") or ()):
        expression = ((var or {}).get("expression") or "").strip()
        if not expression:
            errs.append(required(f"spec.variables[{i}].expression"))
        else:
            errs += _compiles(f"spec.variables[{i}].expression", expression, stored,
                              boolean=False)
    errs += _match_conditions(spec.get("matchConditions") or [], stored,
                              "spec.matchConditions", policy=True)
    return errs
