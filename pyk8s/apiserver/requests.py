"""Request parsing: URL paths to resource coordinates, bodies to objects, options.

Pure functions over strings and bytes, so the routing rules can be unit-tested
without a server.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import orjson
import yaml

from ..api import errors

PROTOBUF = "application/vnd.kubernetes.protobuf"


@dataclasses.dataclass
class Target:
    """What a resource URL names."""
    group: str
    version: str
    plural: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    rest: str = ""  # path after a proxy subresource


def parse_path(path: str, is_plural: Callable[[str, str, str], bool]) -> Target | None:
    """/api/v1/... or /apis/<g>/<v>/... into a Target (None: not a resource path).

    ``is_plural(group, version, segment)`` tells a resource name from a namespace
    subresource like ``/api/v1/namespaces/x/status``.
    """
    parts = [p for p in path.split("/") if p != ""]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    t = Target(group, version)
    if not rest:
        return t
    if (rest[0] == "namespaces" and len(rest) >= 3
            and is_plural(group, version, rest[2])):
        t.namespace, rest = rest[1], rest[2:]
    t.plural = rest[0]
    if len(rest) > 1:
        t.name = rest[1]
    if len(rest) > 2:
        t.subresource = rest[2]
    if len(rest) > 3:
        t.rest = "/".join(rest[3:])
    return t


def content_type(request) -> str:
    """The request's media type; a body sent without Content-Type is JSON (the
    official Python client sends POST and PUT that way)."""
    raw = request.headers.get("Content-Type", "")
    return raw.split(";")[0].strip().lower() or "application/json"


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    ctype = (content_type or "application/json").split(";")[0].strip().lower()
    if not body:
        raise errors.bad_request("the request body is empty")
    try:
        if ctype == PROTOBUF:
            from ..api import protobuf
            return protobuf.decode(body)
        if ctype in ("application/yaml", "application/apply-patch+yaml", "text/yaml"):
            obj = yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        elif ctype in ("application/json", "application/merge-patch+json",
                       "application/strategic-merge-patch+json", "application/json-patch+json",
                       "*/*", ""):
            obj = orjson.loads(body)
        else:
            raise errors.unsupported_media_type(content_type)
    except errors.APIError:
        raise
    except (orjson.JSONDecodeError, yaml.YAMLError, ValueError) as err:
        raise errors.bad_request(f"error decoding request body: {err}") from None
    except Exception as err:  # the protobuf decoder's own error type
        raise errors.bad_request(f"error decoding protobuf body: {err}") from None
    return obj


def wants_table(accept: str) -> bool:
    return "as=Table" in (accept or "")


def wants_aggregated(accept: str) -> bool:
    for part in (accept or "").split(","):
        if "as=APIGroupDiscoveryList" in part and "v=v2" in part and "v=v2beta1" not in part:
            return True
    return False


def bool_param(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def int_param(query, name: str, default: int | None = None) -> int | None:
    v = query.get(name)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError:
        raise errors.bad_request(f"invalid value for {name}: {v!r}") from None
