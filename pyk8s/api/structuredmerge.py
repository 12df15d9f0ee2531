"""Schema-typed walks over objects, as structured-merge-diff's ``typed`` package.

Role: read an object through its schema (the v1.32 definitions, a CRD's structural
schema, or none) and answer the questions server-side apply asks: which fields does
a value set (``to_field_set``), what changed between two values (``compare``), what
is the merge of an applied configuration into a live object (``merge``), and the
object without some fields (``remove_items``).

How a schema node is typed, as kube-openapi's schemaconv: objects with properties
are structs (``x-kubernetes-map-type: atomic`` makes them leaves), maps take their
values' type from ``additionalProperties``; lists are ``atomic`` unless
``x-kubernetes-list-type`` says ``set`` (items are ``v:`` values) or ``map`` (items
are ``k:`` keys from ``x-kubernetes-list-map-keys``, with key defaults); anything
untyped is one leaf. Without a schema (and under
``x-kubernetes-preserve-unknown-fields``) types are deduced from the value: maps are
granular, lists atomic.

Invariants:
- Walks never mutate their inputs; results are new values or new ``FieldSet``s.
- ``MISSING`` (absent) and ``None`` (JSON null) differ, as upstream's nil and null.
- For built-in kinds, ``compare`` treats a struct field Go always serializes (a
  required field, or a non-pointer struct) as present even when the dict lacks it,
  so ownership of parents (the ``"."`` entries) comes out as the real API server's.
- Values of the wrong shape for their schema are leaves; only ``validate`` reports
  them (with upstream's messages), as the apply path requires.
"""
from __future__ import annotations

from typing import Any

import orjson

from . import schemas
from .fieldpaths import FIELD, KEY, FieldSet, Path, element_string, field, index, key, value


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

SCALAR, MAP, LIST, UNTYPED, DEDUCED = "scalar", "map", "list", "untyped", "deduced"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_META_REF = {"$ref": "#/$defs/" + OBJECT_META}

# Key fields with a default in upstream's OpenAPI (``+default=`` markers) that the
# shipped definitions do not carry: an item without them still has a key.
KEY_DEFAULTS: dict[tuple[str, str], Any] = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.LocalObjectReference", "name"): "",
}

# Non-pointer struct fields of k8s.io/api types (Go always serializes them, as {}),
# beyond the metadata/spec/status of every kind.
_P = "io.k8s.api."
GO_STRUCT_FIELDS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    _P + "core.v1.PodTemplateSpec": ("metadata", "spec"),
    _P + "core.v1.PodTemplate": ("template",),
    _P + "core.v1.Container": ("resources",),
    _P + "core.v1.EphemeralContainer": ("resources",),
    _P + "core.v1.ServiceStatus": ("loadBalancer",),
    _P + "core.v1.NodeStatus": ("daemonEndpoints", "nodeInfo"),
    _P + "core.v1.NodeDaemonEndpoints": ("kubeletEndpoint",),
    _P + "core.v1.PersistentVolumeClaimSpec": ("resources",),
    _P + "core.v1.PersistentVolumeClaimTemplate": ("metadata", "spec"),
    _P + "core.v1.Event": ("involvedObject", "source"),
    _P + "core.v1.ContainerStatus": ("state", "lastState"),
    _P + "core.v1.Binding": ("target",),
    _P + "apps.v1.DeploymentSpec": ("template", "strategy"),
    _P + "apps.v1.ReplicaSetSpec": ("template",),
    _P + "apps.v1.StatefulSetSpec": ("template", "updateStrategy"),
    _P + "apps.v1.DaemonSetSpec": ("template", "updateStrategy"),
    _P + "batch.v1.JobSpec": ("template",),
    _P + "batch.v1.CronJobSpec": ("jobTemplate",),
    _P + "batch.v1.JobTemplateSpec": ("metadata", "spec"),
    _P + "autoscaling.v1.HorizontalPodAutoscalerSpec": ("scaleTargetRef",),
    _P + "autoscaling.v2.HorizontalPodAutoscalerSpec": ("scaleTargetRef",),
    _P + "autoscaling.v2.ObjectMetricSource": ("describedObject", "target", "metric"),
    _P + "autoscaling.v2.PodsMetricSource": ("metric", "target"),
    _P + "autoscaling.v2.ResourceMetricSource": ("target",),
    _P + "autoscaling.v2.ContainerResourceMetricSource": ("target",),
    _P + "autoscaling.v2.ExternalMetricSource": ("metric", "target"),
    _P + "networking.v1.IngressStatus": ("loadBalancer",),
    _P + "networking.v1.HTTPIngressPath": ("backend",),
    _P + "networking.v1.IngressServiceBackend": ("port",),
    _P + "networking.v1.NetworkPolicySpec": ("podSelector",),
    _P + "rbac.v1.RoleBinding": ("roleRef",),
    _P + "rbac.v1.ClusterRoleBinding": ("roleRef",),
    _P + "discovery.v1.Endpoint": ("conditions",),
    _P + "storage.v1.VolumeAttachmentSpec": ("source",),
    _P + "admissionregistration.v1.ValidatingWebhook": ("clientConfig",),
    _P + "admissionregistration.v1.MutatingWebhook": ("clientConfig",),
    _P + "events.v1.Event": ("regarding", "deprecatedSource"),
    _P + "authentication.v1.TokenReviewStatus": ("user",),
    _P + "flowcontrol.v1.FlowSchemaSpec": ("priorityLevelConfiguration",),
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec":
        ("names",),
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus":
        ("acceptedNames",),
}.items()}


class Type:
    """The structured-merge-diff type of one schema position."""

    __slots__ = ("kind", "atomic", "fields", "elem", "list_type", "keys", "key_defaults",
                 "present", "scalar", "typer")

    def __init__(self, typer: "Typer", kind: str, *, atomic: bool = False,
                 fields: dict | None = None, elem: Any = None, list_type: str = "atomic",
                 keys: tuple = (), key_defaults: dict | None = None,
                 present: dict | None = None, scalar: str = ""):
        self.typer, self.kind, self.atomic = typer, kind, atomic
        self.fields = fields or {}
        self.elem, self.list_type, self.keys = elem, list_type, keys
        self.key_defaults = key_defaults or {}
        self.present = present or {}  # field -> {} (Go struct) or None (Go null)
        self.scalar = scalar

    def child(self, name: str) -> "Type | None":
        """The type of field ``name`` of a map; None when the schema does not declare it."""
        if name in self.fields:
            return self.typer.of(self.fields[name])
        if self.elem is DEDUCED or self.kind == DEDUCED:
            return self.typer.deduced
        if self.elem is not None:
            return self.typer.of(self.elem)
        return None

    def item(self) -> "Type":
        if self.kind == DEDUCED or self.elem is DEDUCED or self.elem is None:
            return self.typer.deduced
        return self.typer.of(self.elem)

    def shape(self, v: Any) -> str:
        """How a value of this type is walked: SCALAR (a leaf), MAP or LIST (granular)."""
        if self.kind == DEDUCED:
            return MAP if isinstance(v, dict) else SCALAR
        if self.kind in (SCALAR, UNTYPED) or self.atomic:
            return SCALAR
        if self.kind == MAP and (v is None or isinstance(v, dict)):
            return MAP
        if self.kind == LIST and self.list_type != "atomic" and (v is None or isinstance(v, list)):
            return LIST
        return SCALAR

    def item_element(self, item: Any, i: int) -> tuple:
        """(path element, error) of one list item, as ``listItemToPathElement``."""
        if self.list_type == "map" and self.keys:
            if not isinstance(item, dict):
                what = "a null element" if item is None else "non-map elements"
                return None, f"associative list with keys may not have {what}"
            found = {}
            for k in self.keys:
                if k in item:
                    found[k] = item[k]
                elif k in self.key_defaults:
                    found[k] = self.key_defaults[k]
                else:
                    return None, (f'associative list with keys has an element that omits key '
                                  f'field "{k}" (and doesn\'t have default value)')
            return key(found), ""
        if self.list_type in ("set", "map"):
            if isinstance(item, dict):
                return None, "associative list without keys has an element that's a map type"
            if isinstance(item, list):
                return None, "not supported: associative list with lists as elements"
            if item is None:
                return None, ("associative list without keys has an element that's an "
                              "explicit null")
            return value(item), ""
        return index(i), ""


class Typer:
    """Types schema nodes of one root schema, memoized by node identity."""

    def __init__(self, root: str | dict | None):
        self._memo: dict[int, Type] = {}
        self._keep: list = []  # nodes built here stay alive while memoized by id
        self.go_types = isinstance(root, str)
        self.deduced = Type(self, DEDUCED)
        if isinstance(root, str):
            self.root = self.of({"$ref": "#/$defs/" + root})
        else:
            self.root = self._custom_root(root)

    def _custom_root(self, schema: dict | None) -> Type:
        """A custom resource: its schema (or a deduced one) with ObjectMeta metadata."""
        node = dict(schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        props = dict(node.get("properties") or {})
        props["metadata"] = _META_REF
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        node["properties"] = props
        node.pop("x-kubernetes-map-type", None)
        self._keep.append(node)
        return self.of(node)

    def of(self, node: Any) -> Type:
        if node is DEDUCED:
            return self.deduced
        t = self._memo.get(id(node))
        if t is None:
            t = self._memo[id(node)] = self._build(node)
            self._keep.append(node)
        return t

    def _build(self, prop: dict) -> Type:
        name, node = _resolve(prop)
        ann = dict(node)
        for k, v in prop.items():
            if k.startswith("x-kubernetes-"):
                ann[k] = v  # field-level annotations override the definition's
        types = ann.get("type")
        types = {types} if isinstance(types, str) else set(types or ()) - {"null"}
        preserve = bool(ann.get("x-kubernetes-preserve-unknown-fields"))
        if ann.get("x-kubernetes-int-or-string") or len(types) > 1:
            return Type(self, SCALAR)
        if "array" in types or (not types and "items" in ann):
            return self._list(ann)
        props = ann.get("properties")
        extra = ann.get("additionalProperties")
        if "object" in types or props or isinstance(extra, dict):
            if not props and not isinstance(extra, dict) and not preserve and extra is not True:
                return Type(self, UNTYPED)
            elem = extra if isinstance(extra, dict) else (
                DEDUCED if preserve or extra is True else None)
            return Type(self, MAP, atomic=ann.get("x-kubernetes-map-type") == "atomic",
                        fields=dict(props or {}), elem=elem,
                        present=self._present(name, ann) if self.go_types else None)
        if types:
            kind = types.pop()
            return Type(self, SCALAR, scalar={"integer": "numeric", "number": "numeric",
                                              "string": "string",
                                              "boolean": "boolean"}.get(kind, ""))
        return self.deduced if preserve else Type(self, UNTYPED)

    def _list(self, ann: dict) -> Type:
        list_type = ann.get("x-kubernetes-list-type") or "atomic"
        keys = tuple(ann.get("x-kubernetes-list-map-keys") or ())
        items = ann.get("items") if isinstance(ann.get("items"), dict) else DEDUCED
        defaults = {}
        if keys and items is not DEDUCED:
            item_name, item = _resolve(items)
            for k in keys:
                prop = (item.get("properties") or {}).get(k) or {}
                if "default" in prop:
                    defaults[k] = prop["default"]
                elif (item_name, k) in KEY_DEFAULTS:
                    defaults[k] = KEY_DEFAULTS[(item_name, k)]
        return Type(self, LIST, elem=items, list_type=list_type, keys=keys,
                    key_defaults=defaults)

    @staticmethod
    def _present(name: str, node: dict) -> dict:
        """Fields Go serializes even when unset: {} for non-pointer structs, None
        (null) for required maps and lists (scalars are leaves either way)."""
        props = node.get("properties") or {}
        out: dict[str, Any] = {}
        for f in node.get("required") or ():
            if f in props:
                _, pn = _resolve(props[f])
                kinds = pn.get("type")
                kinds = {kinds} if isinstance(kinds, str) else set(kinds or ())
                if kinds & {"object", "array"} or "properties" in pn:
                    out[f] = None
        structs = set(GO_STRUCT_FIELDS.get(name, ()))
        if node.get("x-kubernetes-group-version-kind"):
            structs |= {"metadata", "spec", "status"}
        for f in structs:
            if f in props:
                out[f] = {}
        return out


def _resolve(node: dict) -> tuple[str, dict]:
    """(definition name or "", the resolved schema) of a node, through ``$ref``/``allOf``."""
    name = ""
    seen = 0
    while isinstance(node, dict) and seen < 32:
        seen += 1
        ref = schemas.ref_name(node)
        if ref:
            name, node = ref, schemas.definitions().get(ref, {})
            continue
        all_of = node.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict) \
                and "properties" not in node:
            node = all_of[0]
            continue
        break
    return name, node if isinstance(node, dict) else {}


def typer_for(schema: "str | dict | None | Typer") -> Typer:
    """A Typer from a definition name (built-in kind), a structural schema (custom
    resource) or None (no schema: deduced types); cached for definitions."""
    if isinstance(schema, Typer):
        return schema
    if isinstance(schema, str):
        return _builtin_typer(schema)
    if schema is None:
        return _builtin_typer("")
    return Typer(schema)


_BUILTIN: dict[str, Typer] = {}  # definition name ("" for no schema) -> Typer


def _builtin_typer(name: str) -> Typer:
    t = _BUILTIN.get(name)
    if t is None:
        t = _BUILTIN[name] = Typer(name or None)
    return t


# --- equality -------------------------------------------------------------------------

def equal(a: Any, b: Any) -> bool:
    """JSON equality as ``value.Equals``: numbers by value, booleans never numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(equal(v, b[k]) for k, v in a.items()))
    if isinstance(a, list):
        return (isinstance(b, list) and len(a) == len(b)
                and all(equal(x, y) for x, y in zip(a, b)))
    return type(a) is type(b) and a == b


def _same(a: Any, b: Any) -> bool:
    """``a == b`` already holds; also no ``true``/``1`` mix-up hides in it."""
    if not isinstance(a, (dict, list)):
        return type(a) is type(b) or not (isinstance(a, bool) or isinstance(b, bool))
    return orjson.dumps(a) == orjson.dumps(b) or equal(a, b)


def _empty(v: Any) -> bool:
    return v is MISSING or v is None or (isinstance(v, (dict, list)) and not v)


# --- to field set ---------------------------------------------------------------------

def to_field_set(v: Any, t: Type) -> FieldSet:
    """Every field ``v`` sets (``TypedValue.ToFieldSet``)."""
    out = FieldSet()
    _to_set(v, t, (), out)
    return out


def _to_set(v: Any, t: Type, path: Path, out: FieldSet) -> None:
    shape = t.shape(v)
    if shape == SCALAR:
        out.insert(path)
    elif shape == MAP and isinstance(v, dict):
        for k, child in v.items():
            ct = t.child(k)
            if ct is None:
                continue
            p = path + (field(k),)
            _to_set(child, ct, p, out)
            if k not in t.fields:
                out.insert(p)
    elif shape == LIST and isinstance(v, list):
        it = t.item()
        for i, item in enumerate(v):
            pe, err = t.item_element(item, i)
            if err:
                continue
            _to_set(item, it, path + (pe,), out)
            out.insert(path + (pe,))


def ensure_named_fields_are_members(s: FieldSet, t: Type | None) -> FieldSet:
    """``s`` plus every struct field that has members below it."""
    members = set(s.members)
    children = {}
    for pe, sub in s.children.items():
        ct: Type | None = None
        if t is not None and pe[0] == FIELD and t.kind in (MAP, DEDUCED):
            ct = t.child(pe[1])
            if pe[1] in t.fields:
                members.add(pe)
        elif t is not None and pe[0] == KEY and t.kind == LIST:
            ct = t.item()
        children[pe] = ensure_named_fields_are_members(sub, ct)
    return FieldSet(members, children)


# --- compare --------------------------------------------------------------------------

class Comparison:
    """Fields ``rhs`` added, modified and removed relative to ``lhs``."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self):
        self.added, self.modified, self.removed = FieldSet(), FieldSet(), FieldSet()

    def exclude(self, fields: FieldSet) -> "Comparison":
        out = Comparison()
        out.added = self.added.recursive_difference(fields)
        out.modified = self.modified.recursive_difference(fields)
        out.removed = self.removed.recursive_difference(fields)
        return out


def compare(lhs: Any, rhs: Any, t: Type) -> Comparison:
    """What changed from ``lhs`` to ``rhs`` (``TypedValue.Compare``)."""
    out = Comparison()
    _compare(lhs, rhs, t, (), out)
    return out


def _compare(lhs: Any, rhs: Any, t: Type, path: Path, out: Comparison) -> None:
    if lhs is rhs or (lhs == rhs and _same(lhs, rhs)):
        return  # identical values have no differences (the common case, made cheap)
    ls = t.shape(lhs) if lhs is not MISSING else None
    rs = t.shape(rhs) if rhs is not MISSING else None
    shape = rs if ls is None else ls if rs is None or ls == rs else SCALAR
    if shape == SCALAR or (_empty(lhs) and _empty(rhs)):
        if lhs is MISSING:
            out.added.insert(path)
        elif rhs is MISSING:
            out.removed.insert(path)
        elif not equal(lhs, rhs):
            out.modified.insert(path)
        return
    if shape == MAP:
        _compare_maps(lhs if isinstance(lhs, dict) else {},
                      rhs if isinstance(rhs, dict) else {}, t, path, out,
                      isinstance(lhs, dict), isinstance(rhs, dict))
    else:
        _compare_lists(lhs if isinstance(lhs, list) else [],
                       rhs if isinstance(rhs, list) else [], t, path, out)
    if lhs is MISSING:
        out.added.insert(path)
    elif rhs is MISSING:
        out.removed.insert(path)


def _compare_maps(lhs: dict, rhs: dict, t: Type, path: Path, out: Comparison,
                  lhs_here: bool, rhs_here: bool) -> None:
    keys = list(lhs)
    keys.extend(k for k in rhs if k not in lhs)
    # Go serializes these fields whenever their parent exists: a side that has the
    # parent has them, as {} (a struct) or null.
    keys.extend(k for k in t.present if k not in lhs and k not in rhs
                and lhs_here != rhs_here)
    for k in keys:
        ct = t.child(k)
        if ct is None:
            continue
        lv = lhs.get(k, MISSING)
        rv = rhs.get(k, MISSING)
        if k in t.present:
            filler = t.present[k]
            if lv is MISSING and lhs_here:
                lv = {} if filler is not None else None
            if rv is MISSING and rhs_here:
                rv = {} if filler is not None else None
        if lv is MISSING and rv is MISSING:
            continue
        _compare(lv, rv, ct, path + (field(k),), out)


def _compare_lists(lhs: list, rhs: list, t: Type, path: Path, out: Comparison) -> None:
    it = t.item()
    left = _index_items(t, lhs)
    right = _index_items(t, rhs)
    for pe, rv in right.items():
        _compare(left.get(pe, MISSING), rv, it, path + (pe,), out)
    for pe, lv in left.items():
        if pe not in right:
            _compare(lv, MISSING, it, path + (pe,), out)


def _index_items(t: Type, items: list) -> dict:
    """Path element -> item, first occurrence wins, items without a key skipped."""
    out: dict = {}
    for i, item in enumerate(items):
        pe, err = t.item_element(item, i)
        if not err and pe not in out:
            out[pe] = item
    return out


# --- merge ----------------------------------------------------------------------------

def merge(lhs: Any, rhs: Any, t: Type) -> Any:
    """``rhs`` merged into ``lhs`` (``TypedValue.Merge``, leaves keep ``rhs``)."""
    out = _merge(lhs, rhs, t)
    return {} if out is MISSING or out is None else out


def _merge(lhs: Any, rhs: Any, t: Type) -> Any:
    ls = t.shape(lhs) if lhs is not MISSING else None
    rs = t.shape(rhs) if rhs is not MISSING else None
    shape = rs if ls is None else ls if rs is None or ls == rs else SCALAR
    if shape == SCALAR or (_empty(lhs) and _empty(rhs)):
        return rhs if rhs is not MISSING else lhs
    if shape == MAP:
        return _merge_maps(lhs if isinstance(lhs, dict) else {},
                           rhs if isinstance(rhs, dict) else {}, t)
    return _merge_lists(lhs if isinstance(lhs, list) else [],
                        rhs if isinstance(rhs, list) else [], t)


def _merge_maps(lhs: dict, rhs: dict, t: Type) -> Any:
    out = {}
    for k in list(lhs) + [k for k in rhs if k not in lhs]:
        ct = t.child(k) or t.typer.deduced
        v = _merge(lhs.get(k, MISSING), rhs.get(k, MISSING), ct)
        # A null the merge leaves behind decodes to "unset" (Go nil/zero values).
        if v is not MISSING and v is not None:
            out[k] = v
    return out or MISSING


def _merge_lists(lhs: list, rhs: list, t: Type) -> Any:
    """Associative lists: shared items in the applied order, live-only items kept in
    place, new items where the applied configuration puts them (upstream's order)."""
    it = t.item()
    left_order, left = _ordered(t, lhs)
    right_order, right = _ordered(t, rhs)
    shared = [pe for pe in right_order if pe in left]
    next_shared = shared.pop(0) if shared else None
    merged: set = set()
    out: list = []
    li = ri = 0

    def put(v: Any) -> None:
        if v is not MISSING and v is not None:
            out.append(v)

    while li < len(left_order) or ri < len(right_order):
        if li < len(left_order) and ri < len(right_order):
            pe = left_order[li]
            if pe == right_order[ri]:
                merged.add(pe)
                put(_merge(left[pe], right[pe], it))
                li, ri = li + 1, ri + 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in right and next_shared is not None and next_shared != pe:
                li += 1  # a shared item, merged when the applied order reaches it
                continue
        if li < len(left_order):
            pe = left_order[li]
            if pe not in right:
                put(_merge(left[pe], MISSING, it))
                li += 1
                continue
            if pe in merged:
                li += 1
                continue
        if ri < len(right_order):
            pe = right_order[ri]
            merged.add(pe)
            put(_merge(left.get(pe, MISSING), right[pe], it))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop(0) if shared else None
    return out or MISSING


def _ordered(t: Type, items: list) -> tuple[list, dict]:
    order: list = []
    seen: dict = {}
    for i, item in enumerate(items):
        pe, err = t.item_element(item, i)
        if err or pe in seen:
            continue
        seen[pe] = item
        order.append(pe)
    return order, seen


# --- remove ---------------------------------------------------------------------------

def remove_items(v: Any, to_remove: FieldSet, t: Type) -> Any:
    """``v`` without the fields in ``to_remove`` (and what is below them)."""
    out = _remove(v, to_remove, t)
    return {} if out is None else out


def _remove(v: Any, to_remove: FieldSet, t: Type) -> Any:
    shape = t.shape(v)
    if shape == MAP and isinstance(v, dict) and v:
        out = {}
        for k, child in v.items():
            pe = field(k)
            if pe in to_remove.members:
                continue
            sub = to_remove.children.get(pe)
            if sub is not None:
                child = _remove(child, sub, t.child(k) or t.typer.deduced)
                if child is None:
                    continue  # emptied: decodes as unset
            out[k] = child
        return out or None
    if shape == LIST and isinstance(v, list) and v:
        items = []
        it = t.item()
        for i, item in enumerate(v):
            pe, err = t.item_element(item, i)
            if not err:
                if pe in to_remove.members:
                    continue
                sub = to_remove.children.get(pe)
                if sub is not None:
                    item = _remove(item, sub, it)
                    if item is None:
                        continue
            items.append(item)
        return items or None
    return v


# --- validation -----------------------------------------------------------------------

def validate(v: Any, t: Type) -> list[str]:
    """Upstream's errors converting an applied object to its typed form."""
    errs: list[str] = []
    _validate(v, t, "", errs)
    return errs


def _go_type(v: Any) -> str:
    return {bool: "bool", int: "int64", float: "float64", str: "string",
            dict: "map[string]interface {}", list: "[]interface {}"}.get(type(v), "<nil>")


def _validate(v: Any, t: Type, where: str, errs: list[str]) -> None:
    def err(msg: str) -> None:
        errs.append(f"{where}: {msg}" if where else msg)

    if v is None or t.kind in (UNTYPED, DEDUCED):
        return
    if t.kind == SCALAR:
        if t.scalar == "numeric" and (isinstance(v, bool) or not isinstance(v, (int, float))):
            err(f"expected numeric (int or float), got {_go_type(v)}")
        elif t.scalar == "string" and not isinstance(v, str):
            err(f"expected string, got &value.valueUnstructured{{Value:{_go_literal(v)}}}")
        elif t.scalar == "boolean" and not isinstance(v, bool):
            err(f"expected boolean, got &{{{_go_literal(v)}}}")
        return
    if t.kind == MAP:
        if not isinstance(v, dict):
            err(f"expected map, got &{{{_go_literal(v)}}}")
            return
        if t.atomic:
            return
        for k, child in v.items():
            ct = t.child(k)
            p = where + "." + k
            if ct is None:
                # Upstream stops at the first undeclared field of a map.
                errs.append(f"{p}: field not declared in schema")
                break
            else:
                _validate(child, ct, p, errs)
        return
    if not isinstance(v, list):
        err(f"expected list, got &{{{_go_literal(v)}}}")
        return
    if t.list_type == "atomic":
        return
    seen = set()
    for i, item in enumerate(v):
        pe, problem = t.item_element(item, i)
        if problem:
            err(f"element {i}: {problem}")
            continue
        if pe in seen:
            err(f"duplicate entries for key {element_string(pe)}")
            continue
        seen.add(pe)
        _validate(item, t.item(), where + element_string(pe), errs)


def _go_literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return _go_type(v)
    return str(v)
