#!/usr/bin/env python3
"""Generate pyk8s/api/proto_schema/*.py from the kubectl 1.32 binary on this machine.

Role: a developer tool, run by hand (`python scripts/gen_proto_schema.py`), never at
runtime. Its output, the field tables, is committed; no .proto text is.

Where the facts come from, both inside the real kubectl (a Go binary):
- Field numbers, proto types and message references: every gogo-generated
  `generated.pb.go` registers its `generated.proto` as a gzipped FileDescriptorProto.
  We find those blobs (gzip magic) and parse them with `descriptor_pb2`.
- JSON names, `omitempty`, `,inline`, and whether a Go field is a pointer: the Go
  runtime type data of each API struct (struct field name + tag + field type). The
  descriptor cannot tell these, and Go's JSON depends on them: a pointer that is set
  to a zero value is emitted, a non-pointer `omitempty` zero value is not.

Invariants of the output: every message reference in a generated table resolves to a
message in a generated module; field numbers and types are exactly the descriptor's;
map keys are strings. The script cross-checks the JSON names against the
kubernetes-validate v1.32.0 definitions and prints any difference.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import zlib
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2

# proto package -> (module name, apiVersion). Every group-version we serve decoding for.
PACKAGES = {
    "k8s.io.api.core.v1": ("core_v1", "v1"),
    "k8s.io.api.apps.v1": ("apps_v1", "apps/v1"),
    "k8s.io.api.batch.v1": ("batch_v1", "batch/v1"),
    "k8s.io.api.autoscaling.v1": ("autoscaling_v1", "autoscaling/v1"),
    "k8s.io.api.autoscaling.v2": ("autoscaling_v2", "autoscaling/v2"),
    "k8s.io.api.networking.v1": ("networking_v1", "networking.k8s.io/v1"),
    "k8s.io.api.rbac.v1": ("rbac_v1", "rbac.authorization.k8s.io/v1"),
    "k8s.io.api.coordination.v1": ("coordination_v1", "coordination.k8s.io/v1"),
    "k8s.io.api.discovery.v1": ("discovery_v1", "discovery.k8s.io/v1"),
    "k8s.io.api.storage.v1": ("storage_v1", "storage.k8s.io/v1"),
    "k8s.io.api.policy.v1": ("policy_v1", "policy/v1"),
    "k8s.io.api.certificates.v1": ("certificates_v1", "certificates.k8s.io/v1"),
    "k8s.io.api.events.v1": ("events_v1", "events.k8s.io/v1"),
    "k8s.io.api.scheduling.v1": ("scheduling_v1", "scheduling.k8s.io/v1"),
    "k8s.io.api.node.v1": ("node_v1", "node.k8s.io/v1"),
    "k8s.io.api.admissionregistration.v1": (
        "admissionregistration_v1", "admissionregistration.k8s.io/v1"),
    "k8s.io.api.authentication.v1": ("authentication_v1", "authentication.k8s.io/v1"),
    "k8s.io.api.authorization.v1": ("authorization_v1", "authorization.k8s.io/v1"),
    "k8s.io.api.flowcontrol.v1": ("flowcontrol_v1", "flowcontrol.apiserver.k8s.io/v1"),
    "k8s.io.apimachinery.pkg.apis.meta.v1": ("meta_v1", "meta.k8s.io/v1"),
    "k8s.io.apimachinery.pkg.runtime": ("runtime", ""),
    "k8s.io.apimachinery.pkg.api.resource": ("resource", ""),
    "k8s.io.apimachinery.pkg.util.intstr": ("intstr", ""),
}

# descriptor scalar type -> (wire kind, our scalar name)
SCALARS = {
    1: ("fixed64", "double"), 2: ("fixed32", "float"), 3: ("varint", "int64"),
    4: ("varint", "uint64"), 5: ("varint", "int32"), 6: ("fixed64", "fixed64"),
    7: ("fixed32", "fixed32"), 8: ("varint", "bool"), 9: ("bytes", "string"),
    12: ("bytes", "bytes"), 13: ("varint", "uint32"), 15: ("fixed32", "sfixed32"),
    16: ("fixed64", "sfixed64"), 17: ("varint", "sint32"), 18: ("varint", "sint64"),
}
TYPE_MESSAGE = 11
LABEL_REPEATED = 3

GO_KIND_PTR = 22
GO_KIND_STRUCT = 25


# --- ELF + Go runtime type data -------------------------------------------------------

class Image:
    """The binary's bytes with its .rodata section, addressed by virtual address."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            self.data = f.read()
        if self.data[:4] != b"\x7fELF" or self.data[4] != 2:
            raise SystemExit(f"{path}: not a 64-bit ELF file")
        shoff, = struct.unpack_from("<Q", self.data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", self.data, 0x3A)
        sections = []
        for i in range(shnum):
            name, _t, _fl, addr, off, size = struct.unpack_from(
                "<IIQQQQ", self.data, shoff + i * shentsize)
            sections.append((name, addr, off, size))
        stroff = sections[shstrndx][2]
        for name, addr, off, size in sections:
            end = self.data.index(b"\0", stroff + name)
            if self.data[stroff + name:end] == b".rodata":
                self.ro_addr, self.ro = addr, self.data[off:off + size]
                break
        else:
            raise SystemExit(f"{path}: no .rodata section")

    def inro(self, addr: int) -> bool:
        return self.ro_addr <= addr < self.ro_addr + len(self.ro)

    def u64(self, addr: int, n: int = 1):
        return struct.unpack_from(f"<{n}Q", self.ro, addr - self.ro_addr)

    def varint(self, off: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            b = self.ro[off]
            off += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result, off

    def name(self, addr: int) -> tuple[int, str, str]:
        """A Go runtime `abi.Name`: flags byte, varint length, name, optional tag."""
        off = addr - self.ro_addr
        flags = self.ro[off]
        n, off = self.varint(off + 1)
        text = self.ro[off:off + n].decode("utf-8")
        tag = ""
        if flags & 2:
            t, toff = self.varint(off + n)
            tag = self.ro[toff:toff + t].decode("utf-8")
        return flags, text, tag

    def nameoff(self, off: int) -> str:
        # Go 1.23 on ELF: moduledata.types is the start of .rodata.
        return self.name(self.ro_addr + off)[1]


@dataclass
class GoField:
    go_name: str
    json_name: str       # "" when `json:",inline"`
    omitempty: bool
    pointer: bool
    number: int | None   # from the protobuf tag, None when the field has none
    embedded: bool


@dataclass
class GoStruct:
    pkg: str
    name: str
    fields: list[GoField] = field(default_factory=list)

    @property
    def is_kind(self) -> bool:
        """A top-level kind embeds metav1.TypeMeta (which has no protobuf tag)."""
        return any(f.embedded and f.go_name == "TypeMeta" and f.number is None
                   for f in self.fields)


def _parse_tag(tag: str) -> tuple[str | None, bool, int | None]:
    js = re.search(r'json:"([^"]*)"', tag)
    pb = re.search(r'protobuf:"[a-z0-9]+,(\d+),', tag)
    json_name, omitempty = None, False
    if js:
        parts = js.group(1).split(",")
        json_name, omitempty = parts[0], "omitempty" in parts[1:]
    return json_name, omitempty, int(pb.group(1)) if pb else None


def go_structs(img: Image) -> dict[tuple[str, str], GoStruct]:
    """Every struct type whose fields carry protobuf tags, by (package path, name).

    abi.StructType (Go 1.23, amd64): abi.Type (48 bytes: kind byte at +23, tflag at
    +20, str nameOff at +40), PkgPath at +48, Fields slice at +56, then the
    UncommonType (PkgPath nameOff at +80) when tflag has TFlagUncommon.
    """
    found: dict[tuple[str, str], GoStruct] = {}
    ro = img.ro
    for off in range(0, len(ro) - 88, 8):
        if ro[off + 23] & 31 != GO_KIND_STRUCT:
            continue
        addr = img.ro_addr + off
        fptr, flen, fcap = img.u64(addr + 56, 3)
        if not (0 < flen < 400 and flen == fcap and img.inro(fptr)):
            continue
        try:
            raw = [img.u64(fptr + 24 * i, 3) for i in range(flen)]
            if not all(img.inro(n) and img.inro(t) for n, t, _ in raw):
                continue
            names = [img.name(n) for n, _, _ in raw]
        except (struct.error, IndexError, UnicodeDecodeError):
            continue
        if not any('protobuf:"' in tag for _, _, tag in names):
            continue
        tflag = ro[off + 20]
        if not tflag & 1:
            continue
        str_off, = struct.unpack_from("<i", ro, off + 40)
        pkg_off, = struct.unpack_from("<i", ro, off + 80)
        tname = img.nameoff(str_off)
        if tflag & 2:  # TFlagExtraStar: the stored name is "*pkg.T"
            tname = tname[1:]
        s = GoStruct(pkg=img.nameoff(pkg_off) if pkg_off else "", name=tname.split(".")[-1])
        for (flags, go_name, tag), (_, typ, _) in zip(names, raw):
            json_name, omitempty, number = _parse_tag(tag)
            s.fields.append(GoField(
                go_name=go_name,
                json_name=go_name if json_name is None else json_name,
                omitempty=omitempty,
                pointer=ro[typ - img.ro_addr + 23] & 31 == GO_KIND_PTR,
                number=number,
                embedded=bool(flags & 8)))
        found[(s.pkg, s.name)] = s
    return found


def descriptors(img: Image) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Every gzipped FileDescriptorProto in the binary, by proto package."""
    out = {}
    for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", img.data):
        try:
            raw = zlib.decompressobj(31).decompress(img.data[m.start():m.start() + (4 << 20)])
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:  # not every gzip magic is a descriptor; skip those
            continue
        if fd.name.endswith("generated.proto") and fd.package:
            out[fd.package] = fd
    return out


# --- table building --------------------------------------------------------------------

@dataclass
class Message:
    name: str
    fields: dict[int, tuple]
    list_alias: bool = False


def _ref(type_name: str) -> str:
    pkg, _, name = type_name.lstrip(".").rpartition(".")
    if pkg not in PACKAGES:
        raise SystemExit(f"reference to a package we do not generate: {type_name}")
    return f"{PACKAGES[pkg][0]}.{name}"


def build(fds, structs, warnings: list[str]):
    modules = {}
    for pkg, (mod, api_version) in PACKAGES.items():
        fd = fds.get(pkg)
        if fd is None:
            raise SystemExit(f"kubectl binary has no descriptor for {pkg}")
        go_pkg = fd.options.go_package or pkg.replace(".", "/").replace("k8s/io", "k8s.io", 1)
        entries = {}   # ".pkg.Msg.FooEntry" -> (key type, value descriptor field)
        for msg in fd.message_type:
            for nested in msg.nested_type:
                if not nested.options.map_entry:
                    raise SystemExit(f"unexpected nested message {msg.name}.{nested.name}")
                key, value = sorted(nested.field, key=lambda f: f.number)
                if key.type != 9:
                    raise SystemExit(f"non-string map key in {msg.name}.{nested.name}")
                entries[f".{pkg}.{msg.name}.{nested.name}"] = value
        messages, kinds = [], []
        for msg in fd.message_type:
            gs = structs.get((go_pkg, msg.name))
            by_num = {f.number: f for f in gs.fields if f.number is not None} if gs else {}
            table = {}
            for f in sorted(msg.field, key=lambda f: f.number):
                table[f.number] = _field(pkg, msg.name, f, by_num.get(f.number),
                                         entries, warnings, has_go=gs is not None)
            for num in set(by_num) - set(table):
                warnings.append(f"{pkg}.{msg.name}: Go field {num} not in descriptor")
            alias = (gs is None and len(table) == 1
                     and table.get(1, ("",))[0] == "items" and table[1][3] == "rep")
            messages.append(Message(msg.name, table, alias))
            if gs is not None and gs.is_kind:
                kinds.append(msg.name)
        modules[mod] = (pkg, api_version, messages, kinds)
    return modules


def _field(pkg, msg_name, f, gf, entries, warnings, *, has_go):
    if f.type == TYPE_MESSAGE and f.type_name in entries:
        value = entries[f.type_name]
        card = "map"
        wire, typ = "bytes", (_ref(value.type_name) if value.type == TYPE_MESSAGE
                              else SCALARS[value.type][1])
    else:
        card = "rep" if f.label == LABEL_REPEATED else "opt"
        if f.type == TYPE_MESSAGE:
            wire, typ = "bytes", _ref(f.type_name)
        else:
            wire, typ = SCALARS[f.type]
    if gf is None:
        if has_go:
            warnings.append(f"{pkg}.{msg_name}.{f.name}: no Go field for number {f.number}")
        return (f.name, wire, typ, card, False)
    if gf.json_name == "-":
        warnings.append(f"{pkg}.{msg_name}.{f.name}: json:\"-\" (decoded specially)")
        return (f.name, wire, typ, card, False)
    # Go's JSON keeps a zero value when the field is a pointer (set on purpose) or
    # has no omitempty; gogo writes non-pointer scalars even when they are zero.
    # Message fields are emitted whenever present, so the flag only matters for scalars.
    scalar = "." not in typ
    emit_zero = card == "opt" and scalar and (gf.pointer or not gf.omitempty)
    return (gf.json_name, wire, typ, card, emit_zero)


# --- checks ----------------------------------------------------------------------------

def check_against_openapi(modules, errors):
    """Compare flattened JSON names with kubernetes-validate's v1.32.0 definitions."""
    import kubernetes_validate

    path = os.path.join(os.path.dirname(kubernetes_validate.__file__),
                        "kubernetes-json-schema", "v1.32.0-local", "_definitions.json")
    with open(path) as f:
        defs = json.load(f)["$defs"]
    tables = {f"{mod}.{m.name}": m.fields for mod, (_, _, ms, _) in modules.items() for m in ms}

    def names(ref):
        out = set()
        for spec in tables[ref].values():
            out |= names(spec[2]) if spec[0] == "" else {spec[0]}
        return out

    for mod, (pkg, _, messages, _) in modules.items():
        prefix = "io.k8s." + pkg.removeprefix("k8s.io.")
        for m in messages:
            d = defs.get(f"{prefix}.{m.name}")
            if not d or "properties" not in d:
                continue
            ours = names(f"{mod}.{m.name}")
            # TypeMeta carries apiVersion/kind in JSON but is not in a kind's proto.
            theirs = set(d["properties"]) - ({"apiVersion", "kind"} - ours)
            if ours != theirs:
                errors.append(f"{mod}.{m.name}: JSON names differ from OpenAPI: "
                                f"only ours {sorted(ours - theirs)}, "
                                f"only OpenAPI {sorted(theirs - ours)}")


def check_references(modules):
    known = {f"{mod}.{m.name}" for mod, (_, _, ms, _) in modules.items() for m in ms}
    scalars = {t for _, t in SCALARS.values()}
    for mod, (_, _, messages, _) in modules.items():
        for m in messages:
            for num, spec in m.fields.items():
                if spec[2] not in known and spec[2] not in scalars:
                    raise SystemExit(f"{mod}.{m.name}.{num}: unresolved {spec[2]}")


# --- output ----------------------------------------------------------------------------

HEADER = '''"""{title}: protobuf field tables for {what}.

Generated by scripts/gen_proto_schema.py from the descriptors and Go struct tags
inside kubectl 1.32; do not edit by hand. Read by pyk8s.api.protobuf.

MESSAGES maps a message name to {{field number: (json name, wire kind, type,
cardinality, emit zero)}}: json name "" means the sub-message is inlined into its
parent (Go `json:",inline"`); wire kind is varint, bytes, fixed32 or fixed64; type is
a scalar name or "module.Message"; cardinality is opt, rep or map (map<string, type>);
emit zero keeps a zero scalar that was on the wire (a Go pointer or a field without
omitempty). KINDS lists the top-level kinds served under API_VERSION; LIST_ALIASES
names messages that are a Go slice type on the JSON side (a list of their items).
"""
'''


def render(mod, pkg, api_version, messages, kinds) -> str:
    what = f"API version {api_version}" if api_version else "shared apimachinery types"
    lines = [HEADER.format(title=f"{mod} ({pkg})", what=what)]
    q = json.dumps
    lines.append(f"API_VERSION = {q(api_version)}\n")
    lines.append("KINDS = frozenset({")
    lines += [f"    {q(k)}," for k in sorted(kinds)]
    lines.append("})\n")
    aliases = sorted(m.name for m in messages if m.list_alias)
    lines.append("LIST_ALIASES = frozenset({" + ", ".join(q(a) for a in aliases) + "})\n")
    lines.append("MESSAGES = {")
    for m in messages:
        lines.append(f"    {q(m.name)}: {{")
        for num, (name, wire, typ, card, zero) in m.fields.items():
            lines.append(f"        {num}: ({q(name)}, {q(wire)}, {q(typ)}, {q(card)}, {zero}),")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubectl", default=os.path.realpath("/usr/bin/kubectl"))
    ap.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "pyk8s", "api", "proto_schema"))
    args = ap.parse_args()
    img = Image(args.kubectl)
    warnings: list[str] = []
    structs = go_structs(img)
    if ("k8s.io/api/core/v1", "PodSpec") not in structs:
        raise SystemExit("found no Go type data for core/v1 PodSpec: unsupported Go runtime?")
    modules = build(descriptors(img), structs, warnings)
    check_references(modules)
    errors: list[str] = []
    check_against_openapi(modules, errors)
    for w in warnings:
        print("note:", w, file=sys.stderr)
    if errors:
        for e in errors:
            print("error:", e, file=sys.stderr)
        raise SystemExit("tables disagree with the v1.32.0 OpenAPI definitions; nothing written")
    os.makedirs(args.out, exist_ok=True)
    for mod, (pkg, api_version, messages, kinds) in modules.items():
        with open(os.path.join(args.out, f"{mod}.py"), "w") as f:
            f.write(render(mod, pkg, api_version, messages, kinds))
    print(f"wrote {len(modules)} modules to {os.path.normpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
