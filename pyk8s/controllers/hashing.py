"""Template hashes and revision names: pod-template-hash and ControllerRevision hashes.

Role: ``controller.ComputeHash`` (Deployment pod-template-hash, DaemonSet revision
hash), ``history.HashControllerRevision`` (StatefulSet revisions) and
``rand.SafeEncodeString``, over JSON documents instead of Go structs.

Invariants:
- ``go_json`` is ``encoding/json.Marshal`` of a ``map[string]interface{}``: compact,
  keys sorted, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, other non-ASCII text
  left as UTF-8. Equal documents give equal bytes.
- ``compute_hash`` is FNV-32a over ``go_json(template)`` followed, when a collision
  count is given, by its little-endian uint32 in 8 bytes (upstream's layout). The
  value differs from upstream's, which hashes a Go struct dump, but it is stable,
  depends only on the template and changes when the collision count does.
- Hashes are rendered with ``safe_encode`` (no vowels, no 0/1/3), so they never
  spell words and are valid label values.
"""
from __future__ import annotations

import json
import struct
from typing import Any

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes, h: int = _FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def fnv32(data: bytes, h: int = _FNV_OFFSET) -> int:
    for b in data:
        h = ((h * _FNV_PRIME) & 0xFFFFFFFF) ^ b
    return h


def safe_encode(s: str) -> str:
    """``rand.SafeEncodeString``: map each byte onto a vowel-free alphabet."""
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in s.encode())


def go_json(value: Any) -> bytes:
    """Bytes of Go's ``json.Marshal`` for a decoded JSON value."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text.encode()


def drop_nulls(value: Any) -> Any:
    """``value`` without null map entries, at any depth."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def compute_hash(template: dict, collision_count: int | None) -> str:
    """``controller.ComputeHash``: the pod-template-hash of ``template``."""
    h = fnv32a(go_json(template))
    if collision_count is not None:
        h = fnv32a(struct.pack("<I", collision_count & 0xFFFFFFFF) + bytes(4), h)
    return safe_encode(str(h))


def hash_controller_revision(raw: bytes, probe: int | None) -> str:
    """``history.HashControllerRevision``: FNV-32 of the data plus the probe."""
    h = fnv32(raw)
    if probe is not None:
        h = fnv32(str(probe).encode(), h)
    return safe_encode(str(h))


def go_template(template: dict) -> dict:
    """A pod template as Go serializes the struct: fields Go always writes are present.

    Each container's ``resources`` appears even when empty, as in upstream revision
    data. (Go also writes ``metadata.creationTimestamp: null``; nulls do not survive
    storage here, so they are left out to keep stored and computed data equal.)
    """
    out = drop_nulls(json.loads(json.dumps(template)))
    out.setdefault("metadata", {})
    spec = out.get("spec") or {}
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            c.setdefault("resources", {})
    return out
