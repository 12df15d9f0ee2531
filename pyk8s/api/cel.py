"""CEL for admission: webhook ``matchConditions`` and ValidatingAdmissionPolicy
expressions (apiserver/pkg/admission/plugin/cel).

Here in ``api`` because both the registry (creation-time checks) and the API
server's webhook admission compile conditions. Expressions are compiled by
Google's CEL C++ implementation (``cel-expr-python``) in an environment declared
as upstream's admission environment: ``object``, ``oldObject``, ``request`` and
``namespaceObject`` (all ``dyn`` here; upstream types ``request`` and
``namespaceObject``), ``authorizer`` and ``authorizer.requestResource``
(upstream's authorizer library, apiserver/pkg/cel/library/authz.go; the caller
supplies the decisions), with the strings, optional, bindings and encoders
extensions. Kubernetes' own CEL libraries (quantity, url, ip, cidr,
format, k8s list functions) are not available.

Two environments are kept. The *checking* one declares the authorizer library
with distinct opaque types, so ``authorizer.check('get')`` is a compile error as
upstream; the *running* one represents authorizer values as maps, because opaque
values cannot be passed to the C++ runtime from Python. Every expression is
compiled in both.

``compile_condition`` raises ``CompileError`` with upstream's ``compilation
failed: ERROR: <input>:1:5: ...`` detail, or ``must evaluate to bool but got
<type>``. An expression whose type is only known at run time (``dyn``, e.g.
``object.spec.enabled``) is accepted at creation, unlike upstream, and a non-bool
result is an evaluation error. ``Program.evaluate`` returns the bool or raises
``EvalError`` with upstream's ``expression '<expr>' resulted in error: <why>``.

Policy expressions (``compile_condition(..., policy=True)`` for booleans,
``compile_expression`` for variables and messages, read with ``Program.value``)
also see ``params`` and ``variables`` (both ``dyn``).
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable

from cel_expr_python import cel as _cel
from cel_expr_python.ext import ext_bindings, ext_encoders, ext_optional, ext_strings

AUTHZ = "kubernetes.authorization."


class CompileError(Exception):
    """The expression does not compile: ``detail`` is upstream's field-error detail."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class EvalError(Exception):
    """Evaluating the expression failed (upstream's ``cel.Error`` of type Invalid)."""


def _issues(message: str) -> str:
    """cel-cpp's status text as cel-go's ``issues.String()``."""
    message = re.sub(r"^[A-Z_]+: ", "", message)
    message = re.sub(r" \[[A-Z_]+\]$", "", message.rstrip())
    return message


def _eval_reason(message: str) -> str:
    """cel-cpp's evaluation error as cel-go words it."""
    message = _issues(message)
    m = re.match(r'Key not found in map ?: "?(.*?)"?$', message)
    if m:
        return f"no such key: {m.group(1)}"
    m = re.match(r"No matching overloads? found for (?:function )?'?([^'\s]*)'?", message)
    if m and m.group(1):
        return f"no such overload: {m.group(1)}"
    return {"divide by zero": "division by zero",
            "modulus by zero": "modulus by zero"}.get(message, message)


# -- the authorizer library -------------------------------------------------------

# A check as the authorizer sees it: {"verb", "path"} for a non-resource check, else
# {"verb", "group", "version", "resource", "subresource", "namespace", "name"}; with
# "serviceAccount": [namespace, name] when made through authorizer.serviceAccount().
# The callable answers (allowed, reason) and may raise to report an error.
Authorize = Callable[[dict], "tuple[bool, str]"]

# The running environment's implementations (values are maps with a "_t" tag).
_AUTHORIZERS: dict[int, Authorize] = {}


def _f_path(a: dict, path: str) -> dict:
    return {**a, "_t": "PathCheck", "path": path}


def _f_group(a: dict, group: str) -> dict:
    return {**a, "_t": "GroupCheck", "group": group}


def _f_service_account(a: dict, ns: str, name: str) -> dict:
    return {**a, "_t": "Authorizer", "serviceAccount": [ns, name]}


def _f_resource(g: dict, resource: str) -> dict:
    return {**g, "_t": "ResourceCheck", "resource": resource}


def _setter(key: str) -> Callable[[dict, str], dict]:
    return lambda r, value: {**r, key: value}


def _f_check(c: dict, verb: str) -> dict:
    check = {"verb": verb}
    if c["_t"] == "PathCheck":
        check["path"] = c["path"]
    else:
        check.update({k: c.get(k, "") for k in ("group", "resource", "subresource",
                                                "namespace", "name")})
        check["version"] = c.get("version") or "*"
    if c.get("serviceAccount"):
        check["serviceAccount"] = list(c["serviceAccount"])
    try:
        allowed, reason = _AUTHORIZERS[int(c["_ctx"])](check)
    except Exception as err:  # an authorizer failure is the decision's error
        return {"_t": "Decision", "allowed": False, "reason": "", "error": str(err)}
    return {"_t": "Decision", "allowed": bool(allowed), "reason": reason or "", "error": ""}


_RUN_IMPLS: dict[str, tuple[Callable, int]] = {
    "path": (_f_path, 1), "group": (_f_group, 1), "serviceAccount": (_f_service_account, 2),
    "resource": (_f_resource, 1), "subresource": (_setter("subresource"), 1),
    "namespace": (_setter("namespace"), 1), "name": (_setter("name"), 1),
    "check": (_f_check, 1),
    "allowed": (lambda d: bool(d["allowed"]), 0), "reason": (lambda d: d["reason"], 0),
    "errored": (lambda d: bool(d["error"]), 0), "error": (lambda d: d["error"], 0),
}

# name -> [(receiver type, argument count, result type)] for the checking environment.
_SIGNATURES = {
    "path": [("Authorizer", 1, "PathCheck")],
    "group": [("Authorizer", 1, "GroupCheck")],
    "serviceAccount": [("Authorizer", 2, "Authorizer")],
    "resource": [("GroupCheck", 1, "ResourceCheck")],
    "subresource": [("ResourceCheck", 1, "ResourceCheck")],
    "namespace": [("ResourceCheck", 1, "ResourceCheck")],
    "name": [("ResourceCheck", 1, "ResourceCheck")],
    "check": [("PathCheck", 1, "Decision"), ("ResourceCheck", 1, "Decision")],
    "allowed": [("Decision", 0, "bool")], "reason": [("Decision", 0, "string")],
    "errored": [("Decision", 0, "bool")], "error": [("Decision", 0, "string")],
}


def _type(name: str):
    if name == "bool":
        return _cel.Type.BOOL
    if name == "string":
        return _cel.Type.STRING
    return _cel.Type.AbstractType(AUTHZ + name)


def _extensions() -> list:
    return [ext_strings.ExtStrings(), ext_optional.ExtOptional(), ext_bindings.ExtBindings(),
            ext_encoders.ExtEncoders()]


_VARIABLES = ("object", "oldObject", "request", "namespaceObject")
# ValidatingAdmissionPolicy expressions also see ``params`` and ``variables``.
_POLICY_VARIABLES = ("params", "variables")


@functools.cache
def _check_env(extra: tuple[str, ...] = ()):
    functions = []
    for name, sigs in _SIGNATURES.items():
        overloads = [_cel.Overload(f"{recv.lower()}_{name}", return_type=_type(result),
                                   parameters=[_type(recv)] + [_cel.Type.STRING] * n,
                                   is_member=True)
                     for recv, n, result in sigs]
        functions.append(_cel.FunctionDecl(name, overloads))
    variables = {v: _cel.Type.DYN for v in _VARIABLES + extra}
    variables["authorizer"] = _type("Authorizer")
    variables["authorizer.requestResource"] = _type("ResourceCheck")
    return _cel.NewEnv(variables=variables, extensions=_extensions(), functions=functions)


@functools.cache
def _run_env(extra: tuple[str, ...] = ()):
    m = _cel.Type.Map(_cel.Type.STRING, _cel.Type.DYN)
    results = {"allowed": _cel.Type.BOOL, "errored": _cel.Type.BOOL,
               "reason": _cel.Type.STRING, "error": _cel.Type.STRING}
    functions = [
        _cel.FunctionDecl(name, [_cel.Overload(f"run_{name}", return_type=results.get(name, m),
                                               parameters=[m] + [_cel.Type.STRING] * n,
                                               is_member=True, impl=impl)])
        for name, (impl, n) in _RUN_IMPLS.items()]
    variables = {v: _cel.Type.DYN for v in _VARIABLES + extra}
    variables["authorizer"] = m
    variables["authorizer.requestResource"] = m
    return _cel.NewEnv(variables=variables, extensions=_extensions(), functions=functions)


class Program:
    """A compiled boolean condition."""

    def __init__(self, expression: str, compiled: Any, extra: tuple[str, ...] = ()):
        self.expression = expression
        self._compiled = compiled
        self._extra = extra

    def evaluate(self, variables: dict, authorize: Authorize) -> bool:
        """The condition's value for ``variables`` (object, oldObject, request,
        namespaceObject); ``authorize`` answers the ``authorizer`` checks."""
        kind, value = self._eval(variables, authorize)
        if kind != "BOOL":
            raise EvalError(self._error(f"must evaluate to bool but got {kind.lower()}"))
        return bool(value)

    def value(self, variables: dict, authorize: Authorize) -> tuple[str, Any]:
        """(CEL type name, plain Python value) of the expression for ``variables``."""
        return self._eval(variables, authorize)

    def _eval(self, variables: dict, authorize: Authorize) -> tuple[str, Any]:
        key = id(authorize)
        _AUTHORIZERS[key] = authorize
        base = {"_t": "Authorizer", "_ctx": key}
        data = dict(variables)
        data["authorizer"] = base
        request = variables.get("request") or {}
        resource = request.get("resource") or {}
        data["authorizer.requestResource"] = {
            **base, "_t": "ResourceCheck", "group": resource.get("group", ""),
            "version": resource.get("version", ""), "resource": resource.get("resource", ""),
            "subresource": request.get("subResource", ""),
            "namespace": request.get("namespace", ""), "name": request.get("name", "")}
        for name in _VARIABLES + self._extra:
            data.setdefault(name, None)
        try:
            result = self._compiled.eval(data=data)
        except Exception as err:  # a failing function implementation
            raise EvalError(self._error(_eval_reason(str(err)))) from None
        finally:
            _AUTHORIZERS.pop(key, None)
        kind = result.type().name()
        if kind == "ERROR":
            raise EvalError(self._error(_eval_reason(str(result.value()))))
        return kind, result.plain_value()

    def _error(self, why: str) -> str:
        return f"expression '{self.expression}' resulted in error: {why}"


@functools.lru_cache(maxsize=1024)
def compile_condition(expression: str, policy: bool = False) -> Program:
    """Compile a boolean condition, or raise CompileError with upstream's detail.

    ``policy``: a ValidatingAdmissionPolicy expression, which also sees ``params``
    and ``variables``."""
    return _compile(expression, policy, boolean=True)


@functools.lru_cache(maxsize=1024)
def compile_expression(expression: str) -> Program:
    """Compile a ValidatingAdmissionPolicy expression of any result type (a variable,
    a messageExpression); read it with ``Program.value``."""
    return _compile(expression, True, boolean=False)


def _compile(expression: str, policy: bool, boolean: bool) -> Program:
    extra = _POLICY_VARIABLES if policy else ()
    try:
        checked = _check_env(extra).compile(expression)
    except RuntimeError as err:
        raise CompileError("compilation failed: " + _issues(str(err))) from None
    kind = checked.return_type().name()
    if boolean and kind not in ("BOOL", "DYN"):
        raise CompileError(f"must evaluate to bool but got {_type_name(kind)}")
    try:
        running = _run_env(extra).compile(expression)
    except RuntimeError as err:  # cannot happen when the checking environment accepted it
        raise CompileError("compilation failed: " + _issues(str(err))) from None
    return Program(expression, running, extra)


def _type_name(kind: str) -> str:
    if kind.startswith(AUTHZ):
        return kind
    return kind.lower()
