"""Decode `application/vnd.kubernetes.protobuf` request bodies into JSON-shaped dicts.

Role: kubectl's typed commands (`create deployment`, `create token`, `auth can-i`, ...)
send their bodies as Kubernetes protobuf: the magic `k8s\\x00`, then a runtime.Unknown
envelope {typeMeta{apiVersion, kind}, raw, contentEncoding, contentType} whose raw is
the typed message. `decode` turns such a body into the dict the JSON form of the same
request carries, so everything after the HTTP layer sees one shape. One generic walker,
driven by the field tables in pyk8s.api.proto_schema (upstream's field numbers), does
every kind; only the few apimachinery types whose JSON is not an object (Time,
MicroTime, Duration, Quantity, IntOrString, RawExtension, FieldsV1, slice aliases)
have code of their own.

Invariants:
- Output follows Go's encoding/json on the decoded object: JSON field names, inlined
  structs flattened, a zero scalar kept only where Go keeps it (pointer fields, fields
  without omitempty), messages kept when present (Go emits non-pointer structs even
  when empty), int64 as numbers, bytes as standard base64, enums as their strings.
  A zero Time or an empty RawExtension/FieldsV1 (JSON null) is left out instead.
- Unknown field numbers are skipped, whatever their wire type; anything malformed
  (truncated data, wrong wire type for a known field, unknown kind, bad embedded JSON)
  raises ProtobufError, which the API server answers with 400 BadRequest.
- No I/O, no global state beyond the read-only tables.
"""
from __future__ import annotations

import base64
import datetime
import json
import struct

from pyk8s.api import proto_schema

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_WIRE = {"varint": 0, "fixed64": 1, "bytes": 2, "fixed32": 5}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

# Kinds that apimachinery registers in every group-version (metav1.AddToGroupVersion),
# and the unversioned ones it registers under the core "v1".
_SHARED_KINDS = frozenset({
    "CreateOptions", "DeleteOptions", "GetOptions", "ListOptions", "PatchOptions",
    "UpdateOptions", "WatchEvent",
})
_CORE_UNVERSIONED = frozenset({
    "Status", "APIVersions", "APIGroupList", "APIGroup", "APIResourceList",
})


class ProtobufError(ValueError):
    """The body is not a well-formed Kubernetes protobuf message we can decode."""


def message_for(api_version: str, kind: str) -> str | None:
    """The qualified message name ("apps_v1.Deployment") of a kind, or None."""
    ref = proto_schema.KINDS.get((api_version, kind))
    if ref is not None:
        return ref
    if api_version in proto_schema.GROUP_VERSIONS:
        if kind in _SHARED_KINDS or (api_version == "v1" and kind in _CORE_UNVERSIONED):
            return f"meta_v1.{kind}"
    return None


def encode_supported(api_version: str, kind: str) -> bool:
    """Whether protobuf bodies of this kind are understood (a field table exists)."""
    return message_for(api_version, kind) is not None


def decode(body: bytes) -> dict:
    """The JSON-shaped object of a `k8s\\x00`-prefixed protobuf body."""
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf body does not start with the k8s magic number")
    api_version, kind, raw = _envelope(memoryview(body)[len(MAGIC):])
    if not kind:
        raise ProtobufError("protobuf envelope names no kind")
    ref = message_for(api_version, kind)
    if ref is None:
        raise ProtobufError(f'no kind "{kind}" is registered for version "{api_version}"')
    out = {"apiVersion": api_version, "kind": kind}
    try:
        _decode_into(raw, ref, out)
    except RecursionError:
        raise ProtobufError("protobuf message nested too deeply") from None
    return out


def _envelope(buf: memoryview) -> tuple[str, str, memoryview]:
    """runtime.Unknown: 1 typeMeta{1 apiVersion, 2 kind}, 2 raw, 3 encoding, 4 type."""
    api_version = kind = encoding = content_type = ""
    raw = memoryview(b"")
    for num, wt, val in _fields(buf):
        if num == 1 and wt == 2:
            for tnum, twt, tval in _fields(val):
                if tnum == 1 and twt == 2:
                    api_version = _utf8(tval)
                elif tnum == 2 and twt == 2:
                    kind = _utf8(tval)
        elif num == 2 and wt == 2:
            raw = val
        elif num == 3 and wt == 2:
            encoding = _utf8(val)
        elif num == 4 and wt == 2:
            content_type = _utf8(val)
    if encoding:
        raise ProtobufError(f"unsupported protobuf content encoding {encoding!r}")
    if content_type and content_type != CONTENT_TYPE:
        raise ProtobufError(f"unsupported content type {content_type!r} in protobuf envelope")
    return api_version, kind, raw


# --- wire format -------------------------------------------------------------------------

def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def _fields(buf: memoryview):
    """Yield (field number, wire type, value): an int for varints, a view otherwise."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        num, wt = tag >> 3, tag & 7
        if num == 0:
            raise ProtobufError("illegal field number 0")
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 2:
            size, pos = _varint(buf, pos)
            if size > end - pos:
                raise ProtobufError("length-delimited field runs past the end")
            val, pos = buf[pos:pos + size], pos + size
        elif wt in (1, 5):
            size = 8 if wt == 1 else 4
            if size > end - pos:
                raise ProtobufError("truncated fixed-size field")
            val, pos = buf[pos:pos + size], pos + size
        elif wt == 3:
            val, pos = None, _skip_group(buf, pos, num)
        else:
            raise ProtobufError(f"unexpected wire type {wt}")
        yield num, wt, val


def _skip_group(buf: memoryview, pos: int, num: int) -> int:
    """Skip a deprecated group up to its matching end-group tag; groups never carry data we use."""
    depth = [num]
    while depth:
        tag, pos = _varint(buf, pos)
        wt = tag & 7
        if wt == 4:
            if tag >> 3 != depth.pop():
                raise ProtobufError("mismatched end-group tag")
        elif wt == 3:
            depth.append(tag >> 3)
        elif wt == 0:
            _, pos = _varint(buf, pos)
        elif wt == 2:
            size, pos = _varint(buf, pos)
            pos += size
        elif wt in (1, 5):
            pos += 8 if wt == 1 else 4
        else:
            raise ProtobufError(f"unexpected wire type {wt}")
        if pos > len(buf):
            raise ProtobufError("truncated group")
    return pos


def _utf8(val: memoryview) -> str:
    # Go neither checks UTF-8 when decoding protobuf nor emits invalid UTF-8 in JSON.
    return bytes(val).decode("utf-8", "replace")


# --- scalars -----------------------------------------------------------------------------

def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


_VARINT_SCALARS = {
    "int32": lambda v: _signed(v, 32),
    "int64": lambda v: _signed(v, 64),
    "uint32": lambda v: v & 0xFFFFFFFF,
    "uint64": lambda v: v & 0xFFFFFFFFFFFFFFFF,
    "sint32": lambda v: (v >> 1) ^ -(v & 1),
    "sint64": lambda v: (v >> 1) ^ -(v & 1),
    "bool": lambda v: v != 0,
}
_FIXED_SCALARS = {
    "double": "<d", "float": "<f", "fixed64": "<Q", "fixed32": "<I",
    "sfixed64": "<q", "sfixed32": "<i",
}


def _scalar(typ: str, val) -> object:
    if typ == "string":
        return _utf8(val)
    if typ == "bytes":
        return base64.b64encode(val).decode("ascii")
    conv = _VARINT_SCALARS.get(typ)
    if conv is not None:
        return conv(val)
    return struct.unpack(_FIXED_SCALARS[typ], val)[0]


# --- messages ----------------------------------------------------------------------------

_OMIT = object()   # a value Go's JSON writes as null: left out of the dict


def _decode_into(buf: memoryview, ref: str, out: dict) -> dict:
    table = proto_schema.MESSAGES[ref]
    for num, wt, val in _fields(buf):
        spec = table.get(num)
        if spec is None:
            continue  # a field newer than our tables: skip, as Go's unknown fields
        name, wire, typ, card, emit_zero = spec
        if card == "rep" and wt == 2 and wire != "bytes":
            out.setdefault(name, []).extend(_packed(typ, wire, val))
            continue
        if wt != _WIRE[wire]:
            raise ProtobufError(f"{ref} field {num}: wire type {wt}, expected {wire}")
        if card == "map":
            key, value = _map_entry(val, typ)
            out.setdefault(name, {})[key] = None if value is _OMIT else value
        elif card == "rep":
            value = _value(typ, val)
            out.setdefault(name, []).append(None if value is _OMIT else value)
        elif name == "":
            _decode_into(val, typ, out)   # Go `json:",inline"`: fields land in the parent
        elif typ in proto_schema.MESSAGES and not _is_special(typ):
            # A repeated singular message merges into the earlier one, as in proto2.
            sub = out.get(name)
            out[name] = _decode_into(val, typ, sub if isinstance(sub, dict) else {})
        elif typ in proto_schema.MESSAGES:
            # Time, Quantity, IntOrString...: Go's omitempty never drops a struct.
            value = _value(typ, val)
            if value is _OMIT:
                out.pop(name, None)
            else:
                out[name] = value
        else:
            value = _scalar(typ, val)
            if emit_zero or value:
                out[name] = value
            else:
                out.pop(name, None)   # a non-pointer omitempty zero: Go leaves it out
    return out


def _is_special(typ: str) -> bool:
    return typ in _SPECIAL or typ in proto_schema.LIST_ALIASES


def _value(typ: str, val):
    if typ not in proto_schema.MESSAGES:
        return _scalar(typ, val)
    special = _SPECIAL.get(typ)
    if special is not None:
        return special(val)
    if typ in proto_schema.LIST_ALIASES:
        return _decode_into(val, typ, {}).get("items", [])
    return _decode_into(val, typ, {})


def _packed(typ: str, wire: str, val: memoryview) -> list:
    if wire == "varint":
        out, pos = [], 0
        while pos < len(val):
            v, pos = _varint(val, pos)
            out.append(_scalar(typ, v))
        return out
    size = 8 if wire == "fixed64" else 4
    if len(val) % size:
        raise ProtobufError("packed fixed-size field has a partial element")
    return [_scalar(typ, val[i:i + size]) for i in range(0, len(val), size)]


def _map_entry(buf: memoryview, typ: str):
    """A map entry message: key 1 (always a string here), value 2; absent means zero."""
    key, raw = "", None
    want = 2 if typ in proto_schema.MESSAGES else _SCALAR_WIRE.get(typ, 0)
    for num, wt, val in _fields(buf):
        if num == 1 and wt == 2:
            key = _utf8(val)
        elif num == 2:
            if wt != want:
                raise ProtobufError(f"map value of type {typ} has wire type {wt}")
            raw = val
    if typ in proto_schema.MESSAGES:
        return key, _value(typ, raw if raw is not None else memoryview(b""))
    if raw is None:
        return key, _ZERO.get(typ, 0)
    return key, _scalar(typ, raw)


_ZERO = {"string": "", "bytes": "", "bool": False, "double": 0.0, "float": 0.0}
_SCALAR_WIRE = {"string": 2, "bytes": 2, "double": 1, "fixed64": 1, "sfixed64": 1,
                "float": 5, "fixed32": 5, "sfixed32": 5}   # the rest are varints


# --- apimachinery types with their own JSON form ----------------------------------------

def _plain(buf: memoryview) -> dict[int, object]:
    """Last value of each field number, for the small fixed-layout special types."""
    return {num: val for num, _wt, val in _fields(buf)}


def _int_field(fields: dict, num: int, bits: int) -> int:
    val = fields.get(num, 0)
    if not isinstance(val, int):
        raise ProtobufError(f"field {num} is not a varint")
    return _signed(val, bits)


def _str_field(fields: dict, num: int) -> str:
    val = fields.get(num)
    if val is None:
        return ""
    if isinstance(val, int):
        raise ProtobufError(f"field {num} is not length-delimited")
    return _utf8(val)


def _timestamp(buf: memoryview, *, micro: bool):
    fields = _plain(buf)
    seconds, nanos = _int_field(fields, 1, 64), _int_field(fields, 2, 32)
    if seconds == 0 and nanos == 0:
        return _OMIT   # Go's zero Time: JSON null
    try:
        t = _EPOCH + datetime.timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise ProtobufError(f"timestamp {seconds}s out of range") from None
    # Go pads the year to four digits; strftime's %Y does not on every platform.
    text = (f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
            f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}")
    return f"{text}.{t.microsecond:06d}Z" if micro else f"{text}Z"


def _go_duration(ns: int) -> str:
    """time.Duration.String(): 1h2m3.5s, 1.5ms, 10µs, 7ns, 0s."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000_000:
        prec, unit = (3, "µs") if u < 1_000_000 else (6, "ms")
        whole, frac = divmod(u, 10 ** prec)
        return f"{sign}{whole}{_fraction(frac, prec)}{unit}"
    secs, frac = divmod(u, 1_000_000_000)
    text = f"{secs % 60}{_fraction(frac, 9)}s"
    minutes = secs // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def _fraction(frac: int, prec: int) -> str:
    digits = f"{frac:0{prec}d}".rstrip("0")
    return f".{digits}" if digits else ""


def _embedded_json(buf: memoryview):
    """runtime.RawExtension / metav1.FieldsV1: raw bytes holding JSON (or a k8s protobuf)."""
    raw = _plain(buf).get(1)
    if raw is None or isinstance(raw, int) or len(raw) == 0:
        return _OMIT
    raw = bytes(raw)
    if raw.startswith(MAGIC):
        return decode(raw)
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ProtobufError(f"embedded object is not JSON: {e}") from None


def _quantity(buf: memoryview) -> str:
    return _str_field(_plain(buf), 1) or "0"   # a zero Quantity marshals as "0"


def _int_or_string(buf: memoryview):
    fields = _plain(buf)
    if _int_field(fields, 1, 64) == 1:
        return _str_field(fields, 3)
    return _int_field(fields, 2, 32)


_SPECIAL = {
    "meta_v1.Time": lambda buf: _timestamp(buf, micro=False),
    "meta_v1.MicroTime": lambda buf: _timestamp(buf, micro=True),
    "meta_v1.Duration": lambda buf: _go_duration(_int_field(_plain(buf), 1, 64)),
    "meta_v1.FieldsV1": _embedded_json,
    "runtime.RawExtension": _embedded_json,
    "resource.Quantity": _quantity,
    "resource.QuantityValue": _quantity,
    "intstr.IntOrString": _int_or_string,
}
