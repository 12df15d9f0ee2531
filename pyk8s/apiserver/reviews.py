"""Create-only review resources: authentication.k8s.io and authorization.k8s.io.

- SelfSubjectReview (``kubectl auth whoami``): the caller's identity.
- TokenReview: what a bearer token authenticates as, for the requested audiences.
- SelfSubjectAccessReview / SubjectAccessReview / LocalSubjectAccessReview
  (``kubectl auth can-i [--as]``): the authorizer's decision for the caller, a named
  user, or a user within one namespace.
- SelfSubjectRulesReview (``kubectl auth can-i --list``): the RBAC rules of the
  caller in a namespace.

Each answer echoes the request with its ``status`` filled in, as upstream's REST
storage for these kinds does (201 Created, never stored).
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from aiohttp import web

from ..registry.catalogue import ResourceInfo
from ..api import errors
from . import handlers
from .authn import NODE_PREFIX, NODES_GROUP, TokenInvalid, UserInfo, node_name, token_user
from .authz import Attributes, authorize
from .requests import Target, content_type, decode_body

if TYPE_CHECKING:
    from .app import APIServer


def _attributes(spec: dict, namespace_override: str | None = None) -> Attributes | None:
    res = spec.get("resourceAttributes")
    if res:
        ns = res.get("namespace", "") if namespace_override is None else namespace_override
        return Attributes(verb=res.get("verb", ""), namespace=ns,
                          api_group=res.get("group", ""), api_version=res.get("version", ""),
                          resource=res.get("resource", ""),
                          subresource=res.get("subresource", ""), name=res.get("name", ""))
    non = spec.get("nonResourceAttributes")
    if non:
        return Attributes.non_resource(non.get("verb", ""), non.get("path", ""))
    return None


def _invalid(kind: str, name: str, field: str, message: str) -> errors.APIError:
    return errors.invalid(kind, "authorization.k8s.io", name, [errors.cause(field, message)])


async def _decide(server: "APIServer", user: UserInfo, attrs: Attributes) -> dict:
    allowed, reason = await authorize(server, user, attrs)
    status: dict = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return status


def _user_of_spec(spec: dict) -> UserInfo:
    return UserInfo(spec.get("user", ""), spec.get("uid", ""), tuple(spec.get("groups") or ()),
                    {k: tuple(v or ()) for k, v in (spec.get("extra") or {}).items()})


def _check_attributes(kind: str, spec: dict) -> None:
    has_res, has_non = bool(spec.get("resourceAttributes")), \
        bool(spec.get("nonResourceAttributes"))
    if has_res and has_non:
        raise _invalid(kind, "", "spec.resourceAttributes", "Invalid value: \"\": cannot be "
                       "specified in combination with nonResourceAttributes")
    if not has_res and not has_non:
        raise _invalid(kind, "", "spec.resourceAttributes", "Invalid value: \"null\": exactly "
                       "one of nonResourceAttributes or resourceAttributes must be specified")


async def serve(server: "APIServer", request: web.Request, info: ResourceInfo,
                t: Target, user: UserInfo) -> web.Response:
    """Answer a POST of one review kind as ``user`` (the authenticated caller)."""
    if request.method != "POST":
        raise errors.method_not_allowed(request.method.lower(), info.plural, info.group)
    body = decode_body(await request.read(), content_type(request))
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be an object")
    out = copy.deepcopy(body)
    out["apiVersion"] = f"{info.group}/{info.version}" if info.group else info.version
    out["kind"] = info.kind
    out.setdefault("metadata", {})
    out["metadata"].setdefault("creationTimestamp", None)
    spec = out.setdefault("spec", {})
    kind = info.kind
    if kind == "SelfSubjectReview":
        out["status"] = {"userInfo": user.to_dict()}
    elif kind == "TokenReview":
        out["status"] = await _token_review(server, spec)
    elif kind == "SelfSubjectAccessReview":
        _check_attributes(kind, spec)
        out["status"] = await _decide(server, user, _attributes(spec))
    elif kind == "SubjectAccessReview":
        _check_attributes(kind, spec)
        if not spec.get("user") and not spec.get("groups"):
            raise _invalid(kind, "", "spec.user", 'Invalid value: "": at least one of user or '
                           'group must be specified')
        out["status"] = await _decide(server, _user_of_spec(spec), _attributes(spec))
    elif kind == "LocalSubjectAccessReview":
        if spec.get("nonResourceAttributes"):
            raise _invalid(kind, "", "spec.nonResourceAttributes", "Invalid value: "
                           "\"\": disallowed on this kind of request")
        _check_attributes(kind, spec)
        res = spec["resourceAttributes"]
        if res.get("namespace") and res["namespace"] != t.namespace:
            raise _invalid(kind, "", "spec.resourceAttributes.namespace",
                           f'Invalid value: "{res["namespace"]}": must match '
                           f'metadata.namespace')
        res["namespace"] = t.namespace
        out["metadata"]["namespace"] = t.namespace
        if not spec.get("user") and not spec.get("groups"):
            raise _invalid(kind, "", "spec.user", 'Invalid value: "": at least one of user or '
                           'group must be specified')
        out["status"] = await _decide(server, _user_of_spec(spec), _attributes(spec, t.namespace))
    elif kind == "SelfSubjectRulesReview":
        out["status"] = rules_review(server, user, spec.get("namespace", ""))
    else:
        raise errors.method_not_allowed("create", info.plural, info.group)
    return handlers.respond(out, 201)


async def _token_review(server: "APIServer", spec: dict) -> dict:
    token = spec.get("token", "")
    config = server.security.config
    wanted = tuple(spec.get("audiences") or config.api_audiences)
    try:
        user = await token_user(server, token, audiences=wanted)
    except TokenInvalid as err:
        message = str(err)
        if ", " in message:
            message = "[" + message + "]"
        return {"authenticated": False, "user": {}, "error": message}
    return {"authenticated": True, "user": user.to_dict(), "audiences": list(wanted)}


def rules_review(server: "APIServer", user: UserInfo, namespace: str) -> dict:
    """The SelfSubjectRulesReview status of ``user`` in ``namespace``."""
    rules, errs = server.security.rbac.rules_for(user, namespace)
    resource_rules, non_resource_rules = [], []
    for rule in rules:
        if rule.get("resources"):
            r = {"verbs": list(rule.get("verbs") or []),
                 "apiGroups": list(rule.get("apiGroups") or []),
                 "resources": list(rule.get("resources") or [])}
            if rule.get("resourceNames"):
                r["resourceNames"] = list(rule["resourceNames"])
            resource_rules.append(r)
        if rule.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(rule.get("verbs") or []),
                                       "nonResourceURLs": list(rule["nonResourceURLs"])})
    status = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
              "incomplete": False}
    if node_name(user) is not None and user.name.startswith(NODE_PREFIX) and \
            NODES_GROUP in user.groups:
        status["incomplete"] = True
        errs = errs + ["node authorizer does not support user rule resolution"]
    if errs:
        status["incomplete"] = True
        status["evaluationError"] = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
    return status
