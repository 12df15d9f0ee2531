"""API errors as upstream's `Status` objects (apimachinery/pkg/api/errors).

Every failure a client can see is an APIError; its ``status()`` is the exact JSON
body Kubernetes sends, so kubectl prints the messages users know
(``Error from server (NotFound): configmaps "x" not found``).
"""
from __future__ import annotations

from typing import Any


class APIError(Exception):
    def __init__(self, code: int, reason: str, message: str, *,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": self.message,
                                "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def qualified(resource: str, group: str) -> str:
    """``deployments.apps``, or just ``pods`` for the core group."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, resource: str) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    d["group"] = group
    d["kind"] = resource
    return d


def not_found(resource: str, group: str, name: str) -> APIError:
    return APIError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                    details=_details(name, group, resource))


def already_exists(resource: str, group: str, name: str) -> APIError:
    return APIError(409, "AlreadyExists",
                    f'{qualified(resource, group)} "{name}" already exists',
                    details=_details(name, group, resource))


def conflict(resource: str, group: str, name: str, why: str) -> APIError:
    return APIError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(resource, group)} '
                    f'"{name}": {why}', details=_details(name, group, resource))


MODIFIED = ("the object has been modified; please apply your changes to the latest "
            "version and try again")


def invalid(kind: str, group: str, name: str, causes: list[dict[str, Any]]) -> APIError:
    """422 Invalid; each cause is {"reason","message","field"} as field.Error renders."""
    # As field.ErrorList.ToAggregate(): each distinct message once, bracketed when many.
    msgs: list[str] = []
    for c in causes:
        m = f'{c.get("field", "")}: {c["message"]}'
        if m not in msgs:
            msgs.append(m)
    text = ", ".join(msgs)
    if len(msgs) > 1:
        text = "[" + text + "]"
    qual = f"{kind}.{group}" if group else kind
    d = {"name": name, "group": group, "kind": kind, "causes": causes}
    return APIError(422, "Invalid", f'{qual} "{name}" is invalid: {text}', details=d)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def method_not_allowed(verb: str, resource: str = "", group: str = "") -> APIError:
    what = qualified(resource, group) if resource else "this resource"
    return APIError(405, "MethodNotAllowed",
                    f"{verb} is not supported on resources of kind \"{what}\"",
                    details=_details("", group, resource) if resource else {})


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def resource_expired(rv: int, oldest: int) -> APIError:
    return gone(f"too old resource version: {rv} ({oldest})")


def forbidden(resource: str, group: str, name: str, why: str) -> APIError:
    return APIError(403, "Forbidden",
                    f'{qualified(resource, group)} "{name}" is forbidden: {why}',
                    details=_details(name, group, resource))


def page_not_found() -> APIError:
    return APIError(404, "NotFound", "the server could not find the requested resource",
                    details={})


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(415, "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media "
                    f"types include: application/json, application/yaml, "
                    f"application/vnd.kubernetes.protobuf (got {content_type})")


def not_acceptable(accept: str) -> APIError:
    return APIError(406, "NotAcceptable",
                    f"only the following media types are accepted: application/json, "
                    f"application/yaml (got {accept})")


def timeout(message: str) -> APIError:
    return APIError(504, "Timeout", message)


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}",
                    details={"causes": [{"message": message}]})


def cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, Any]:
    return {"reason": reason, "message": message, "field": field}
