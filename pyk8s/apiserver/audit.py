"""Audit logging (apiserver/pkg/audit): who did what, as JSON lines.

An ``audit.k8s.io/v1`` Policy (``--audit-policy-file``) picks the level of each
request with its first matching rule (users, userGroups, verbs, resources with
group/resources/resourceNames, namespaces, nonResourceURLs): None, Metadata, Request
(adds the request body) or RequestResponse (adds the response body). Every audited
request writes one ``audit.k8s.io/v1`` Event at stage ResponseComplete (or Panic)
to ``--audit-log-path`` unless the policy omits that stage.

Lines are queued and written by a thread, so the event loop never waits on the disk.
The log file is created 0600 (it names users and may carry request bodies).

As upstream: a failed request's ``responseStatus`` carries the Status's status,
message, reason, details and code (audit.LogResponseObject); a 401 is recorded at the
authentication stage, so its event has an empty ``user`` and no authorization
annotations (WithFailedAuthenticationAudit).
"""
from __future__ import annotations

import asyncio
import datetime
import fnmatch
import logging
import os
import queue
import sys
import threading
import uuid

import orjson
import yaml

log = logging.getLogger(__name__)
LEVELS = ("None", "Metadata", "Request", "RequestResponse")


def _micro_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Policy:
    def __init__(self, doc: dict):
        if doc.get("kind") != "Policy":
            raise ValueError("audit policy: kind must be Policy")
        self.rules = list(doc.get("rules") or [])
        self.omit_stages = set(doc.get("omitStages") or [])
        for rule in self.rules:
            if rule.get("level") not in LEVELS:
                raise ValueError(f"audit policy: unknown level {rule.get('level')!r}")

    @classmethod
    def load(cls, path: str) -> "Policy":
        with open(path) as f:
            return cls(yaml.safe_load(f) or {})

    def level(self, user, attrs) -> tuple[str, set[str]]:
        """(level, omitted stages) for a request."""
        for rule in self.rules:
            if _rule_matches(rule, user, attrs):
                return rule["level"], self.omit_stages | set(rule.get("omitStages") or [])
        return "None", self.omit_stages


def _rule_matches(rule: dict, user, attrs) -> bool:
    if rule.get("users") and user.name not in rule["users"]:
        return False
    if rule.get("userGroups") and not set(rule["userGroups"]) & set(user.groups):
        return False
    if rule.get("verbs") and attrs.verb not in rule["verbs"]:
        return False
    if rule.get("namespaces") and (not attrs.resource_request or
                                   attrs.namespace not in rule["namespaces"]):
        return False
    if rule.get("resources"):
        if not attrs.resource_request:
            return False
        if not any(_group_resource_matches(gr, attrs) for gr in rule["resources"]):
            return False
    if rule.get("nonResourceURLs"):
        if attrs.resource_request:
            return False
        if not any(fnmatch.fnmatchcase(attrs.path, u) if u.endswith("*") else u == attrs.path
                   for u in rule["nonResourceURLs"]):
            return False
    return True


def _group_resource_matches(gr: dict, attrs) -> bool:
    if gr.get("group", "") not in ("*", attrs.api_group) and "group" in gr:
        return False
    combined = attrs.resource + ("/" + attrs.subresource if attrs.subresource else "")
    resources = gr.get("resources") or []
    if resources and not any(r in ("*", combined, attrs.resource) or
                             (r.startswith("*/") and attrs.subresource == r[2:]) or
                             (r.endswith("/*") and attrs.resource == r[:-2])
                             for r in resources):
        return False
    names = gr.get("resourceNames") or []
    return not names or attrs.name in names


class AuditLog:
    """Events to a JSON-lines file, written off the event loop."""

    def __init__(self, policy: Policy, path: str):
        self.policy = policy
        self.path = path
        self._queue: queue.Queue = queue.Queue()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # an existing log too
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._thread = threading.Thread(target=self._write_loop, name="audit-log",
                                        daemon=True)
        self._thread.start()

    def _write_loop(self) -> None:
        with self._file as f:
            while True:
                line = self._queue.get()
                if line is None:
                    return
                f.write(line)

    def record(self, *, user, impersonator, attrs, request, received: str, code: int,
               decision: str, reason: str, request_body: bytes | None,
               response_body: bytes | None) -> None:
        level, omitted = self.policy.level(user, attrs)
        stage = "ResponseComplete" if code < 500 or code == 503 else "Panic"
        if level == "None" or stage in omitted:
            return
        event: dict = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level,
                       "auditID": request.headers.get("Audit-ID") or str(uuid.uuid4()),
                       "stage": stage, "requestURI": str(request.rel_url),
                       "verb": attrs.verb,
                       "user": {} if code == 401 else (impersonator or user).to_dict(),
                       "sourceIPs": [request.remote] if request.remote else [],
                       "userAgent": request.headers.get("User-Agent", "")}
        if impersonator is not None and code != 401:
            event["impersonatedUser"] = user.to_dict()
        request_object = _decoded(request_body, request.headers.get("Content-Type", ""))
        if attrs.resource_request:
            # As upstream's LogRequestObject: a create names its object in the body.
            meta = (request_object or {}).get("metadata") or {} \
                if isinstance(request_object, dict) else {}
            ref = {"resource": attrs.resource,
                   "namespace": attrs.namespace or meta.get("namespace", ""),
                   "name": attrs.name or meta.get("name", ""), "apiGroup": attrs.api_group,
                   "apiVersion": attrs.api_version, "subresource": attrs.subresource}
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        event["responseStatus"] = _response_status(code, response_body)
        if level in ("Request", "RequestResponse") and request_object is not None:
            event["requestObject"] = request_object
        if level == "RequestResponse" and response_body:
            event["responseObject"] = _decoded(response_body, "application/json")
        event["requestReceivedTimestamp"] = received
        event["stageTimestamp"] = _micro_now()
        if code != 401:  # never got as far as authorization
            event["annotations"] = {"authorization.k8s.io/decision": decision,
                                    "authorization.k8s.io/reason": reason}
            from .security import CONTEXT_KEY
            ctx = request.get(CONTEXT_KEY) if hasattr(request, "get") else None
            if ctx is not None:
                event["annotations"].update(ctx.audit_annotations)
        self._queue.put(orjson.dumps(event) + b"\n")

    async def close(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, 5)


def _response_status(code: int, response_body: bytes | None) -> dict:
    """``responseStatus``: the code, and for a failure the bounded fields of its Status
    (the APIError in flight when the request failed before a response was built, or
    the Status body the handler answered with)."""
    out: dict = {"metadata": {}}
    status = None
    exc = sys.exc_info()[1]
    if exc is not None and callable(getattr(exc, "status", None)) and \
            getattr(exc, "code", None) == code:
        try:
            status = exc.status()
        except Exception:
            status = None
    if status is None and code >= 300 and response_body and response_body[:1] == b"{":
        try:
            body = orjson.loads(response_body)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            status = body
    if isinstance(status, dict):
        for k in ("status", "message", "reason", "details"):
            if status.get(k):
                out[k] = status[k]
        if isinstance(out.get("details"), dict):  # Go omits empty fields
            out["details"] = {k: v for k, v in out["details"].items() if v not in ("", None)}
    out["code"] = code
    return out


def _decoded(body: bytes | None, content_type: str):
    """A request or response body as JSON (protobuf and YAML bodies decoded), or None."""
    if not body:
        return None
    from .requests import decode_body
    try:
        return decode_body(body, content_type or "application/json")
    except Exception:  # a body that is not an object: audit without it
        return None


def add_annotation(key: str, value: str) -> None:
    """Add an annotation to the audit event of the request being served (upstream's
    admission Attributes.AddAnnotation); the first value of a key is kept."""
    from .security import current
    ctx = current()
    if ctx is not None:
        ctx.audit_annotations.setdefault(key, value)


def now() -> str:
    return _micro_now()
