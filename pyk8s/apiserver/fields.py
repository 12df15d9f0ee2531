"""Field selectors: which fields each resource can be selected by, and matching.

Upstream supports a fixed set of field labels per resource (the registry's
GetAttrs/fieldLabelConversionFunc); anything else is ``field label not supported``.
"""
from __future__ import annotations

from typing import Callable

from ..registry.catalogue import ResourceInfo
from ..api import errors

COMMON = ("metadata.name", "metadata.namespace")
SUPPORTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                   "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                   "status.podIP", "status.podIPs", "status.nominatedNodeName"),
    ("", "events"): ("involvedObject.kind", "involvedObject.namespace",
                     "involvedObject.name", "involvedObject.uid",
                     "involvedObject.apiVersion", "involvedObject.resourceVersion",
                     "involvedObject.fieldPath", "reason", "reportingComponent", "source",
                     "type"),
    ("events.k8s.io", "events"): ("regarding.kind", "regarding.namespace", "regarding.name",
                                  "regarding.uid", "reason", "type", "reportingController"),
    ("", "secrets"): ("type",),
    ("", "namespaces"): ("status.phase",),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "replicationcontrollers"): ("status.replicas",),
    ("apps", "replicasets"): ("status.replicas",),
    ("batch", "jobs"): ("status.successful",),
    ("certificates.k8s.io", "certificatesigningrequests"): ("spec.signerName",),
    ("", "services"): ("spec.clusterIP", "spec.type"),
}

Matcher = Callable[[dict], bool]


def _value(obj: dict, path: str) -> str:
    if path == "source":
        return (obj.get("source") or {}).get("component", "")
    if path == "status.podIPs":
        return ",".join(ip.get("ip", "") for ip in
                        (obj.get("status") or {}).get("podIPs") or [])
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return "false" if path in ("spec.hostNetwork", "spec.unschedulable") else ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def _split(text: str) -> list[str]:
    """Split on unescaped commas, keeping escapes for the term parser."""
    terms, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == ",":
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    terms.append("".join(cur))
    return terms


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise errors.bad_request(f"invalid field selector: invalid escape sequence "
                                         f"in {value!r}")
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse(info: ResourceInfo, text: str, extra: tuple[str, ...] = ()) -> Matcher | None:
    """A matcher for a field selector string (None for an empty selector)."""
    if not text:
        return None
    allowed = COMMON + SUPPORTED.get((info.group, info.plural), ()) + extra
    reqs = []
    for term in _split(text):
        if not term:
            continue
        for op in ("!=", "==", "="):
            idx = term.find(op)
            if idx > 0:
                break
        else:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand "
                                     f"'{term}'")
        field, value = term[:idx].strip(), _unescape(term[idx + len(op):])
        if field not in allowed:
            raise errors.bad_request(f"field label not supported: {field}")
        reqs.append((field, op != "!=", value))

    def matches(obj: dict) -> bool:
        return all((_value(obj, f) == v) == eq for f, eq, v in reqs)
    return matches


def with_name(matcher: Matcher | None, name: str) -> Matcher:
    """Add ``metadata.name=<name>`` (a watch on one object's URL)."""
    def by_name(obj: dict) -> bool:
        return obj["metadata"].get("name") == name and (matcher is None or matcher(obj))
    return by_name
