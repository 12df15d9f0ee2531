"""ValidatingAdmissionPolicy (apiserver/pkg/admission/plugin/policy/validating).

Policies and bindings come from the cached ValidatingAdmissionPolicy and
ValidatingAdmissionPolicyBinding objects (policies in name order, each policy's
bindings in name order). A binding (``spec.policyName``) applies its policy to a
request when the policy's ``spec.matchConstraints`` and the binding's
``spec.matchResources`` (if set) both match: namespaceSelector, objectSelector
(the object or the old object), excludeResourceRules, resourceRules (operations,
groups, versions, resources with subresource forms, scope, resourceNames; an empty
list in a binding matches whatever the policy matches) and matchPolicy
(``Equivalent``, the default, also matches a rule naming another served version
of the same group and resource). Requests on the admission configuration objects
themselves are never validated by policies, as upstream.

For each matching binding the params are collected (``spec.paramKind`` with the
binding's ``spec.paramRef``: one named object or every object a selector picks,
in the paramRef's namespace or the request's; ``parameterNotFoundAction: Deny``
refuses when there is none), and for each param the policy's ``matchConditions``
(all must be true; a false one skips) and then ``spec.validations`` are evaluated
with ``object``, ``oldObject``, ``request``, ``params``, ``namespaceObject``,
``authorizer`` and ``variables`` (``spec.variables``, evaluated on first use).

A validation that is not true is a failure, acted on per the binding's
``validationActions``: Deny refuses the request with upstream's
``<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<p>' with binding
'<b>' denied request: <message>`` (the Status's reason is the validation's
``reason``, Invalid by default, with its code: 422, or 403 Forbidden, 401
Unauthorized, 413 RequestEntityTooLarge; details carry the message as a cause),
Warn adds a ``Validation failed for ValidatingAdmissionPolicy ...`` warning and
Audit records upstream's ``validation.policy.admission.k8s.io/validation_failure``
audit annotation. The message is the ``messageExpression``'s (single-line,
non-empty) string, else ``message``, else ``failed expression: <expression>``.
An expression that does not compile or fails to evaluate is, under the policy's
``failurePolicy: Fail`` (the default), such a failure with the CEL error as its
message; under ``Ignore`` it is skipped.

Expressions that do not compile are refused when the policy is created
(``registry/checks/admissionregistration.py``); one stored before still fails here
per ``failurePolicy``.

``spec.auditAnnotations`` are evaluated for every matching binding and param: a
non-empty string value is recorded in the request's audit event as
``<policy>/<key>`` (unique values of several bindings joined with ", ", at most
10 KiB each); null or "" omits it; another type or an error is a failure per
``failurePolicy``.

Not done: CEL type checking against the objects' schemas (``status.typeChecking``). A variable
is evaluated before an expression that names it, so one that fails fails the
expression even where CEL's short-circuit would not reach it.
"""
from __future__ import annotations

import functools
import logging
import re
from typing import Any

import orjson

from ...api import cel, selectors
from . import Plugin, Request
from .webhooks import GROUP, authorize_check, cel_request, rule_matches, selector_matches

log = logging.getLogger(__name__)
POLICIES = "validatingadmissionpolicies"
BINDINGS = "validatingadmissionpolicybindings"
# upstream's rules.IsExemptAdmissionConfigurationResource
EXEMPT = {"validatingwebhookconfigurations", "mutatingwebhookconfigurations", POLICIES,
          BINDINGS, "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"}
FAILURE_ANNOTATION = "validation.policy.admission.k8s.io/validation_failure"
_REASON_CODES = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413,
                 "Invalid": 422}
_VARIABLE_REF = re.compile(r"\bvariables\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
MAX_MESSAGE = 5 * 1024  # celconfig.MaxEvaluatedMessageExpressionSizeBytes
MAX_AUDIT_VALUE = 10 * 1024  # an audit annotation's value is truncated to 10 KiB


class _Denial(Exception):
    """One denied decision: message and reason (empty: Invalid)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.message, self.reason = message, reason


class ValidatingAdmissionPolicy(Plugin):
    name = "ValidatingAdmissionPolicy"

    def _objects(self, plural: str) -> list[dict]:
        store = self.server.stores.get((GROUP, "v1", plural))
        if store is None:
            return []
        return sorted(store.cache.objects.values(), key=lambda o: o["metadata"]["name"])

    async def validate(self, req: Request) -> None:
        if req.group == GROUP and req.resource in EXEMPT:
            return
        policies = self._objects(POLICIES)
        if not policies:
            return
        bindings: dict[str, list[dict]] = {}
        for binding in self._objects(BINDINGS):
            name = (binding.get("spec") or {}).get("policyName") or ""
            bindings.setdefault(name, []).append(binding)
        denied: list[tuple[str, str, _Denial]] = []
        published: dict[str, list[str]] = {}  # "<policy>/<key>" -> its unique values
        for policy in policies:
            policy_name = policy["metadata"]["name"]
            spec = policy.get("spec") or {}
            policy_bindings = bindings.get(policy_name)
            if not policy_bindings or \
                    not self._matches(spec.get("matchConstraints") or {}, req, policy=True):
                continue
            for binding in policy_bindings:
                bspec = binding.get("spec") or {}
                if bspec.get("matchResources") and \
                        not self._matches(bspec["matchResources"], req, policy=False):
                    continue
                binding_name = binding["metadata"]["name"]
                try:
                    params = self._params(spec, bspec, req)
                except _Denial as err:
                    if spec.get("failurePolicy", "Fail") != "Ignore":
                        err.message = f"failed to configure binding: {err.message}"
                        denied.append((policy_name, binding_name, err))
                    continue
                actions = bspec.get("validationActions") or []
                for param in params:
                    for index, failure in self._evaluate(policy_name, spec, req, param,
                                                         published):
                        self._act(req, policy_name, binding_name, actions, index, failure,
                                  denied)
        if published:
            from .. import audit
            for key, values in published.items():
                audit.add_annotation(key, ", ".join(values))
        if denied:
            policy_name, binding_name, failure = denied[0]
            message = (f"ValidatingAdmissionPolicy '{policy_name}' with binding "
                       f"'{binding_name}' denied request: {failure.message}")
            err = req.forbidden(message)
            err.reason = failure.reason or "Invalid"
            err.code = _REASON_CODES.get(err.reason, 422)
            err.details = {**(err.details or {}), "causes": [{"message": message}]}
            raise err

    # -- matching ---------------------------------------------------------------

    def _namespace(self, name: str) -> dict | None:
        store = self.server.stores[("", "v1", "namespaces")]
        return store.cache.objects.get(store.key("", name))

    def _matches(self, match: dict, req: Request, *, policy: bool) -> bool:
        """upstream's matching.Matcher.Matches for a policy's matchConstraints or a
        binding's matchResources."""
        namespaced = bool(req.namespace)
        if namespaced or req.is_("", "namespaces"):
            if req.is_("", "namespaces"):
                labels = ((req.current() or {}).get("metadata") or {}).get("labels") or {}
            else:
                labels = ((self._namespace(req.namespace) or {}).get("metadata") or {}) \
                    .get("labels") or {}
            if not selector_matches(match.get("namespaceSelector"), labels):
                return False
        selector = match.get("objectSelector")
        labels = ((req.current() or {}).get("metadata") or {}).get("labels") or {}
        old_labels = ((req.old or {}).get("metadata") or {}).get("labels") or {}
        if not (selector_matches(selector, labels) or
                (req.old is not None and selector_matches(selector, old_labels))):
            return False
        equivalent = match.get("matchPolicy", "Equivalent") == "Equivalent"
        if any(self._rule_matches(r, req, equivalent)
               for r in match.get("excludeResourceRules") or ()):
            return False
        rules = match.get("resourceRules") or []
        if not rules:
            return not policy
        return any(self._rule_matches(r, req, equivalent) for r in rules)

    def _rule_matches(self, rule: dict, req: Request, equivalent: bool) -> bool:
        names = rule.get("resourceNames") or []
        if names and req.name not in names:
            return False
        namespaced = bool(req.namespace)
        if rule_matches(rule, req, namespaced):
            return True
        if not equivalent:
            return False
        # Equivalent: the same group and resource through another served version.
        for version in rule.get("apiVersions") or ():
            if version not in ("*", req.version) and \
                    (req.group, version, req.resource) in self.server.stores:
                alt = dict(rule, apiVersions=[req.version])
                if rule_matches(alt, req, namespaced):
                    return True
        return False

    # -- params -------------------------------------------------------------------

    def _params(self, spec: dict, bspec: dict, req: Request) -> list[dict | None]:
        """upstream's CollectParams; raises _Denial with its configuration errors."""
        kind = spec.get("paramKind")
        ref = bspec.get("paramRef")
        if not kind or not ref:
            return [None]
        api_version, kind_name = kind.get("apiVersion", ""), kind.get("kind", "")
        group, _, version = api_version.rpartition("/")
        store = next((s for (g, v, _), s in self.server.stores.items()
                      if g == group and v == version and s.strategy.kind == kind_name), None)
        if store is None:
            raise _Denial(f"paramKind kind `&ParamKind{{APIVersion:{api_version},"
                          f"Kind:{kind_name},}}` not known")
        namespace = ""
        if store.info.namespaced:
            namespace = ref.get("namespace") or req.namespace
            if not namespace:
                raise _Denial("cannot use namespaced paramRef in policy binding that "
                              "matches cluster-scoped resources")
        elif ref.get("namespace"):
            raise _Denial("paramRef.namespace must not be provided for a cluster-scoped "
                          "`paramKind`")
        if ref.get("name"):
            found = store.cache.objects.get(store.key(namespace, ref["name"]))
            params = [found] if found is not None else []
        elif ref.get("selector") is not None:
            sel = selectors.label_selector_from_dict(ref["selector"])
            params = [o for o in store.cache.objects.values()
                      if (not namespace or o["metadata"].get("namespace") == namespace) and
                      sel.matches(o["metadata"].get("labels") or {})]
            params.sort(key=lambda o: o["metadata"]["name"])
        else:
            raise _Denial("one of name or selector must be provided")
        if not params and ref.get("parameterNotFoundAction") == "Deny":
            raise _Denial("no params found for policy binding with `Deny` "
                          "parameterNotFoundAction")
        return [{"apiVersion": api_version, "kind": kind_name, **p} for p in params]

    # -- evaluation ---------------------------------------------------------------

    def _evaluate(self, policy_name: str, spec: dict, req: Request, param: dict | None,
                  published: dict[str, list[str]]):
        """(validation index, _Denial) of every failed validation for one param; the
        values of ``spec.auditAnnotations`` go to ``published``."""
        fail = spec.get("failurePolicy", "Fail") != "Ignore"
        ns = None
        if req.namespace and not req.is_("", "namespaces"):
            ns = self._namespace(req.namespace)
        data = {"object": req.obj if req.operation != "DELETE" else None,
                "oldObject": req.old, "request": cel_request(req),
                "namespaceObject": ns, "params": param}
        authz = functools.partial(authorize_check, self.server, req.user)
        scope = _Variables(spec.get("variables") or [], data, authz)
        # matchConditions: any false skips; errors honour failurePolicy.
        errs: list[str] = []
        for condition in spec.get("matchConditions") or ():
            try:
                if not scope.check(condition.get("expression") or ""):
                    return []
            except _EvalFailure as err:
                errs.append(str(err))
        if errs:
            if not fail:
                return []
            why = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
            return [(0, _Denial(why))]
        out = []
        for index, validation in enumerate(spec.get("validations") or ()):
            expression = validation.get("expression") or ""
            try:
                ok = scope.check(expression)
            except _EvalFailure as err:
                if fail:
                    out.append((index, _Denial(str(err))))
                continue
            if ok:
                continue
            message = ""
            if validation.get("messageExpression"):
                try:
                    kind, value = scope.value(validation["messageExpression"])
                    if kind == "STRING":
                        message = value.strip()
                        if len(message) > MAX_MESSAGE or "\n" in message:
                            message = ""
                except _EvalFailure as err:
                    log.info("error while evaluating messageExpression: %s", err)
            if not message:
                message = (validation.get("message") or "").strip()
            if not message:
                message = f"failed expression: {expression.strip()}"
            out.append((index, _Denial(message, validation.get("reason") or "Invalid")))
        for annotation in spec.get("auditAnnotations") or ():
            expression = annotation.get("valueExpression") or ""
            try:
                kind, value = scope.value(expression)
            except _EvalFailure as err:
                if fail:
                    out.append((0, _Denial(str(err))))
                continue
            if kind == "NULL" or (kind == "STRING" and not value):
                continue
            if kind != "STRING":
                if fail:
                    out.append((0, _Denial(
                        f"valueExpression '{expression}' resulted in unsupported return "
                        f"type: {kind.lower()}. Return type must be either string or null.")))
                continue
            key = f"{policy_name}/{annotation.get('key') or ''}"
            values = published.setdefault(key, [])
            value = value[:MAX_AUDIT_VALUE]
            if value not in values:
                values.append(value)
        return out

    def _act(self, req: Request, policy: str, binding: str, actions: list[str], index: int,
             failure: _Denial, denied: list) -> None:
        for action in actions:
            if action == "Deny":
                denied.append((policy, binding, failure))
            elif action == "Warn":
                req.warnings.append(f"Validation failed for ValidatingAdmissionPolicy "
                                    f"'{policy}' with binding '{binding}': "
                                    f"{failure.message}")
            elif action == "Audit":
                from .. import audit
                audit.add_annotation(FAILURE_ANNOTATION, orjson.dumps([{
                    "message": failure.message, "policy": policy, "binding": binding,
                    "expressionIndex": index, "validationActions": actions}]).decode())


class _EvalFailure(Exception):
    """An expression that did not compile or failed to evaluate (upstream's text)."""


class _Variables:
    """One evaluation scope: the request's variables and ``spec.variables``, each
    composited variable evaluated once, when an expression first names it."""

    def __init__(self, variables: list[dict], data: dict, authz):
        self._specs = {v.get("name", ""): v.get("expression", "") for v in variables}
        self._data = data
        self._authz = authz
        self._values: dict[str, Any] = {}
        self._errors: dict[str, str] = {}

    def _resolve(self, expression: str, seen: tuple[str, ...] = ()) -> dict:
        """The ``variables`` map an expression sees; raises _EvalFailure when one it
        names failed."""
        for name in _VARIABLE_REF.findall(expression):
            if name not in self._specs or name in seen:
                continue
            if name not in self._values and name not in self._errors:
                try:
                    self._resolve(self._specs[name], seen + (name,))
                    program = cel.compile_expression(self._specs[name])
                    _, self._values[name] = program.value(self._with_variables(),
                                                          self._authz)
                except cel.CompileError as err:
                    self._errors[name] = f"compilation error: {err.detail}"
                except (cel.EvalError, _EvalFailure) as err:
                    self._errors[name] = str(err)
            if name in self._errors:
                raise _EvalFailure(f"composited variable \"{name}\" fails to evaluate: "
                                   f"{self._errors[name]}")
        return self._with_variables()

    def _with_variables(self) -> dict:
        return {**self._data, "variables": dict(self._values)}

    def _run(self, expression: str, boolean: bool):
        try:
            program = (cel.compile_condition(expression, policy=True) if boolean
                       else cel.compile_expression(expression))
        except cel.CompileError as err:
            raise _EvalFailure(f"compilation error: {err.detail}") from None
        try:
            data = self._resolve(expression)
        except _EvalFailure as err:
            raise _EvalFailure(f"expression '{expression}' resulted in error: {err}") \
                from None
        try:
            return program.value(data, self._authz)
        except cel.EvalError as err:
            raise _EvalFailure(str(err)) from None

    def check(self, expression: str) -> bool:
        """Whether a boolean expression is true (anything else is a failure)."""
        kind, value = self._run(expression, True)
        return kind == "BOOL" and value is True

    def value(self, expression: str) -> tuple[str, Any]:
        return self._run(expression, False)

