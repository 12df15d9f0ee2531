"""Errors the API answers with, as the client sees them.

Role: ``ApiError`` wraps a ``Status`` body (``.code``, ``.reason``, ``.message``,
``.details``); ``status()`` builds such bodies (the fake API answers with them).

Invariants:
- Every non-2xx answer becomes an ``ApiError`` whose ``status`` is a ``Status`` dict,
  even when the server sent plain text (the reason then comes from the code, as
  client-go's ``NewGenericServerResponse``).
- ``str(err)`` is the server's message.
"""
from __future__ import annotations

from typing import Any

import orjson

# The reason client-go assigns to a bare status code (``NewGenericServerResponse``).
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
           413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
           429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
           504: "Timeout"}


class ApiError(Exception):
    """The API server refused a request; ``status`` is its ``Status`` object."""

    def __init__(self, status: dict[str, Any]):
        self.status = status
        super().__init__(self.message)

    @property
    def code(self) -> int:
        return int(self.status.get("code") or 0)

    @property
    def reason(self) -> str:
        return self.status.get("reason") or ""

    @property
    def message(self) -> str:
        return self.status.get("message") or ""

    @property
    def details(self) -> dict[str, Any]:
        return self.status.get("details") or {}

    @classmethod
    def from_response(cls, code: int, body: bytes) -> "ApiError":
        try:
            doc = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and doc.get("kind") == "Status":
            doc.setdefault("code", code)
            return cls(doc)
        text = body.decode(errors="replace").strip() if body else ""
        return cls(status(code, REASONS.get(code, "Unknown"),
                          message=text or f"the server responded with the status code {code}"))


def status(code: int, reason: str, *, message: str,
           details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A failure ``Status`` body as the API server writes it."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": message, "reason": reason,
                            "code": code}
    if details is not None:
        body["details"] = details
    return body


def is_not_found(err: BaseException) -> bool:
    return isinstance(err, ApiError) and err.code == 404


def is_conflict(err: BaseException) -> bool:
    return isinstance(err, ApiError) and err.code == 409 and err.reason == "Conflict"


def is_already_exists(err: BaseException) -> bool:
    return isinstance(err, ApiError) and err.code == 409 and err.reason == "AlreadyExists"


def is_expired(err: BaseException) -> bool:
    """410: the resourceVersion (or continue token) is older than the server keeps."""
    return isinstance(err, ApiError) and err.code == 410
