"""Authorization: may this user do this (upstream's apiserver/pkg/authorization).

``authorize`` asks the authorizers in kube-apiserver's order: members of
``system:masters`` are allowed everything (the privileged-group authorizer), then
the Node authorizer (kubelets, node.py), then RBAC (rbac.py). The first allow wins;
reasons of the others are joined, as upstream's union authorizer does.

``Attributes`` is upstream's authorizer.Attributes: a resource request (verb, group,
version, resource, subresource, namespace, name) or a non-resource one (verb, path).
``request_attributes`` derives them from an HTTP request exactly as upstream's
RequestInfoFactory does, so ``/api/v1`` and ``/apis/apps/v1`` are non-resource paths
and ``/api/v1/namespaces/x`` is the namespace ``x`` in the namespace ``x``.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from aiohttp import web

from ...api import errors
from ..authn import MASTERS, UserInfo

if TYPE_CHECKING:
    from ..app import APIServer

READ_VERBS = ("get", "list", "watch")


@dataclasses.dataclass(frozen=True)
class Attributes:
    """What a request does: a resource request, or a ``path`` for a non-resource one."""

    verb: str
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    field_selector: str = ""  # of a list or watch, for the Node authorizer's pod lists

    @property
    def resource_request(self) -> bool:
        return not self.path

    @classmethod
    def non_resource(cls, verb: str, path: str) -> "Attributes":
        return cls(verb=verb, path=path or "/")

    def to_resource_attributes(self) -> dict:
        if not self.resource_request:
            return {}
        out = {"verb": self.verb, "group": self.api_group, "resource": self.resource}
        for key, value in (("namespace", self.namespace), ("version", self.api_version),
                           ("subresource", self.subresource), ("name", self.name)):
            if value:
                out[key] = value
        return out


async def authorize(server: "APIServer", user: UserInfo,
                    attrs: Attributes) -> tuple[bool, str]:
    """(allowed, reason) for ``user`` doing ``attrs``."""
    if MASTERS in user.groups:
        return True, ""
    from . import node, rbac
    reasons: list[str] = []
    for authorizer in (node.authorize, rbac.authorize):
        decision, reason = authorizer(server, user, attrs)
        if reason:
            reasons.append(reason)
        if decision is not None:
            return decision, reason
    return False, "\n".join(reasons)


def forbidden_message(user: UserInfo, attrs: Attributes) -> str:
    """upstream's responsewriters.forbiddenMessage."""
    if not attrs.resource_request:
        return f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    resource = attrs.resource
    if attrs.subresource:
        resource += "/" + attrs.subresource
    if attrs.namespace:
        return (f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group '
                f'"{attrs.api_group}" in the namespace "{attrs.namespace}"')
    return (f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group '
            f'"{attrs.api_group}" at the cluster scope')


def forbidden_error(resource: str, group: str, name: str, message: str) -> errors.APIError:
    """upstream's apierrors.NewForbidden: the name is quoted only when there is one."""
    qualified = errors.qualified(resource, group) if resource else ""
    if not qualified:
        text = f"forbidden: {message}"
    elif not name:
        text = f"{qualified} is forbidden: {message}"
    else:
        text = f'{qualified} "{name}" is forbidden: {message}'
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", resource)) if v}
    return errors.APIError(403, "Forbidden", text, details=details)


def forbidden(user: UserInfo, attrs: Attributes, reason: str = "") -> errors.APIError:
    msg = forbidden_message(user, attrs)
    if reason:
        msg = f"{msg}: {reason}"
    return forbidden_error(attrs.resource, attrs.api_group, attrs.name, msg)


# -- request attributes -----------------------------------------------------------------

VERB_OF_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def request_attributes(server: "APIServer", request: web.Request) -> Attributes:
    """upstream's RequestInfoFactory.NewRequestInfo for one HTTP request."""
    from ..requests import parse_path
    path = request.path
    parts = [p for p in path.split("/") if p]
    method = request.method.upper()
    lower = method.lower()
    if len(parts) < 3 or parts[0] not in ("api", "apis") or \
            (parts[0] == "apis" and len(parts) < 4):
        return Attributes.non_resource(lower if lower != "head" else "get", path)
    t = parse_path(path, server.is_plural)
    if t is None or not t.plural:
        return Attributes.non_resource(lower, path)
    q = request.query
    name, namespace = t.name, t.namespace
    if t.plural == "namespaces" and t.group == "" and name:
        namespace = name
    if method in ("GET", "HEAD"):
        watching = q.get("watch", "").lower() in ("true", "1")
        if watching:
            verb = "watch"
        else:
            verb = "get" if name else "list"
        if not name and verb in ("list", "watch"):
            name = _single_name(q.get("fieldSelector", ""))
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = VERB_OF_METHOD.get(method, lower)
    return Attributes(verb=verb, namespace=namespace, api_group=t.group,
                      api_version=t.version, resource=t.plural, subresource=t.subresource,
                      name=name, field_selector=q.get("fieldSelector", "")
                      if verb in ("list", "watch") else "")


def _single_name(field_selector: str) -> str:
    """A list or watch selecting ``metadata.name=x`` names the object x, as upstream."""
    if not field_selector or "," in field_selector:
        return ""
    for op in ("==", "="):
        key, sep, value = field_selector.partition(op)
        if sep and key.strip() == "metadata.name" and "!" not in key:
            return value.strip()
    return ""
