"""``metadata.managedFields``: who owns which field, kept as the API server keeps it.

Role: the field manager of k8s.io/apimachinery's ``managedfields`` package, over
plain dicts. ``track_update`` records a create, update or (non-apply) patch:
the writer's ``Update`` entry gains the fields it changed and every other manager
loses them. ``apply`` performs server-side apply: the applied configuration is
merged into the live object by its schema, its fields become the applier's
``Apply`` set, fields it applied before and no longer applies are removed unless
someone else owns them, and a changed field owned by another manager is a
conflict unless ``force`` takes it over.

The upstream managers are reproduced in their order: version check, last-applied
annotation sync and client-side-apply upgrade (manager ``kubectl`` only),
skip-non-applied (an untracked object stays untracked on update; its first apply
attributes its fields to ``before-first-apply``), the cap of ten ``Update`` entries
(older ones merge into ``ancient-changes``), manager identity
(manager, operation, apiVersion for updates, subresource), timestamps, and the
metadata fields never tracked (name, namespace, uid, resourceVersion, ...).

Invariants:
- Entries with an empty field set are dropped; an object without entries has no
  ``managedFields`` key. Entries are sorted as upstream (Apply before Update, then
  time, manager, apiVersion, subresource) with upstream's key order.
- Field sets of the main resource never include ``status`` when the kind has a
  status subresource; writes to ``status`` only own fields under ``status``.
- Nothing here mutates its inputs except ``track_update``, which sets
  ``new["metadata"]["managedFields"]``.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from . import meta as metautil
from . import schemas
from . import structuredmerge as sm
from .fieldpaths import (FieldPathError, FieldSet, field, from_fields_v1, go_json,
                         path_string, to_fields_v1)

APPLY, UPDATE = "Apply", "Update"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10
FIELD_MANAGER_MAX_LENGTH = 128
_CURRENT = "current-operation"
_STRIP = FieldSet.of(
    (field("apiVersion"),), (field("kind"),), (field("metadata"),),
    *((field("metadata"), field(f)) for f in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
        "generation", "managedFields", "resourceVersion")))


# --- manager names ------------------------------------------------------------------

def manager_from_user_agent(user_agent: str) -> str:
    """Upstream's ``prefixFromUserAgent``: the User-Agent up to its first ``/``,
    printable characters only, at most 128 bytes (``kubectl``, ``Go-http-client``)."""
    out = ""
    size = 0
    for ch in user_agent.split("/")[0]:
        if not ch.isprintable():
            continue
        n = len(ch.encode())
        if size + n > FIELD_MANAGER_MAX_LENGTH:
            break
        out += ch
        size += n
    return out


def manager_or_user_agent(field_manager: str, user_agent: str) -> str:
    """The ``fieldManager`` query parameter, else the name derived from the User-Agent."""
    return field_manager or manager_from_user_agent(user_agent)


def validate_field_manager(name: str) -> list[str]:
    """Upstream's ``ValidateFieldManager`` messages (for ``fieldManager: ...`` causes)."""
    errs = []
    if len(name) > FIELD_MANAGER_MAX_LENGTH:
        errs.append(f"Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes")
    for i, ch in enumerate(name):
        if not ch.isprintable():
            errs.append(f'Invalid value: "{name}": invalid character U+{ord(ch):04X} '
                        f'(at position {i})')
    return errs


def identifier(manager: str, operation: str, api_version: str, subresource: str = "") -> str:
    """``BuildManagerIdentifier``: the JSON of the entry without fields and time
    (appliers without apiVersion, so one applier keeps one entry across versions)."""
    entry: dict[str, str] = {"manager": manager} if manager else {}
    entry["operation"] = operation
    if operation != APPLY and api_version:
        entry["apiVersion"] = api_version
    if subresource:
        entry["subresource"] = subresource
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


# --- decoded managed fields -----------------------------------------------------------

@dataclass
class Versioned:
    """One manager's fields, the apiVersion they were written at, and whether applied."""

    fields: FieldSet
    api_version: str
    applied: bool


@dataclass
class Managed:
    """Manager identifier -> fields, and -> time of its last change (or None)."""

    sets: dict[str, Versioned]
    times: dict[str, str | None]

    @classmethod
    def empty(cls) -> "Managed":
        return cls({}, {})

    def copy(self) -> "Managed":
        return Managed(dict(self.sets), dict(self.times))


class ManagedFieldsError(ValueError):
    """``managedFields`` that cannot be decoded (upstream's messages)."""


def decode(entries: Any) -> Managed:
    """``DecodeManagedFields``; ``ManagedFieldsError`` on a malformed entry."""
    out = Managed.empty()
    if entries is None:
        return out
    if not isinstance(entries, list):
        raise ManagedFieldsError("managedFields must be a list")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ManagedFieldsError(f"managed fields entry {i} is not an object")
        op = e.get("operation")
        if op not in (APPLY, UPDATE):
            raise ManagedFieldsError("operation must be `Apply` or `Update`")
        if not e.get("apiVersion"):
            raise ManagedFieldsError("apiVersion must not be empty")
        ftype = e.get("fieldsType") or ""
        if not ftype:
            raise ManagedFieldsError(f"missing fieldsType in managed fields entry {i}")
        if ftype != "FieldsV1":
            raise ManagedFieldsError(f'invalid fieldsType "{ftype}" in managed fields entry {i}')
        ident = identifier(e.get("manager") or "", op, e["apiVersion"],
                           e.get("subresource") or "")
        try:
            fields = from_fields_v1(e.get("fieldsV1") if e.get("fieldsV1") is not None else {})
        except FieldPathError as err:
            raise ManagedFieldsError(f"error decoding versioned set: {err}") from None
        out.sets[ident] = Versioned(fields, e["apiVersion"], op == APPLY)
        out.times[ident] = e.get("time")
    return out


def encode(managed: Managed) -> list[dict]:
    """``encodeManagedFields``: the sorted API entries (empty sets already dropped)."""
    entries = []
    for ident, vs in managed.sets.items():
        info = json.loads(ident)
        entry: dict[str, Any] = {"manager": info.get("manager", "")}
        entry["operation"] = APPLY if vs.applied else info.get("operation", UPDATE)
        entry["apiVersion"] = vs.api_version
        t = managed.times.get(ident)
        if t:
            entry["time"] = t
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = to_fields_v1(vs.fields)
        if info.get("subresource"):
            entry["subresource"] = info["subresource"]
        if not entry["manager"]:
            del entry["manager"]
        entries.append(entry)
    entries.sort(key=lambda e: (e["operation"], _seconds(e.get("time")), e.get("manager", ""),
                                e["apiVersion"], e.get("subresource", "")))
    return entries


def _seconds(t: str | None) -> float:
    if not t:
        return 0
    try:
        return int(metautil.parse_time(t).timestamp())
    except ValueError:
        return 0


def _is_reset(entries: Any) -> bool:
    """A client asking to clear managedFields: ``[]`` or ``[{}]``."""
    return isinstance(entries, list) and (not entries or entries == [{}])


def _set_managed(obj: dict, managed: Managed) -> None:
    meta = obj.setdefault("metadata", {})
    entries = encode(managed)
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)


def _without_managed(obj: dict | None) -> dict:
    if not obj:
        return {}
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def _now(now: str | None) -> str:
    return now or metautil.now()


# --- the field-set algebra of one write (merge.Updater) ---------------------------------

class Conflict(Exception):
    """Apply conflicts: (manager identifier, path) pairs, upstream's message."""

    def __init__(self, conflicts: list[tuple[str, tuple]]):
        self.conflicts = conflicts
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if len(self.conflicts) == 1:
            ident, path = self.conflicts[0]
            return (f"Apply failed with 1 conflict: conflict with {print_manager(ident)}: "
                    f"{path_string(path)}")
        lines = []
        by_manager: dict[str, list] = {}
        for ident, path in self.conflicts:
            by_manager.setdefault(ident, []).append(path)
        for ident in sorted(by_manager):
            lines.append(f"conflicts with {print_manager(ident)}:")
            lines.extend(f"- {path_string(p)}" for p in by_manager[ident])
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict[str, str]]:
        return [{"reason": "FieldManagerConflict",
                 "message": f"conflict with {print_manager(ident)}",
                 "field": path_string(path)} for ident, path in self.conflicts]


def print_manager(ident: str) -> str:
    """``printManager``: ``"kubectl"``, or ``"kubectl-edit" using apps/v1`` for updates."""
    try:
        info = json.loads(ident)
    except ValueError:
        return json.dumps(ident)
    out = json.dumps(info.get("manager", ""), ensure_ascii=False)
    if info.get("subresource"):
        out += f' with subresource {json.dumps(info["subresource"], ensure_ascii=False)}'
    if info.get("operation") == UPDATE:
        out += f" using {info.get('apiVersion', '')}"
    return out


class _Updater:
    """``merge.Updater`` for one kind: ``ignored`` are the reset fields of the write."""

    def __init__(self, typ: sm.Type, ignored: FieldSet):
        self.typ, self.ignored = typ, ignored

    def _update(self, old: dict, new: dict, version: str, sets: dict[str, Versioned],
                workflow: str, force: bool) -> sm.Comparison:
        cmp = sm.compare(old, new, self.typ)
        filtered = cmp.exclude(self.ignored) if self.ignored else cmp
        changed = filtered.modified.union(filtered.added)
        conflicts: dict[str, FieldSet] = {}
        for ident, vs in sets.items():
            if ident == workflow:
                continue
            clash = vs.fields.intersection(changed)
            if clash:
                conflicts[ident] = clash
        if conflicts and not force:
            raise Conflict([(ident, p) for ident in sorted(conflicts)
                            for p in conflicts[ident].paths()])
        for ident, vs in list(sets.items()):
            if ident == workflow:
                continue
            rest = vs.fields
            if ident in conflicts:
                rest = rest.difference(conflicts[ident])
            if filtered.removed:
                rest = rest.difference(filtered.removed)
            if rest is not vs.fields:
                sets[ident] = Versioned(rest, vs.api_version, vs.applied)
        for ident in [i for i, vs in sets.items() if vs.fields.empty()]:
            del sets[ident]
        return cmp

    def update(self, old: dict, new: dict, version: str, sets: dict[str, Versioned],
               manager: str) -> None:
        cmp = self._update(old, new, version, sets, manager, True)
        prev = sets[manager].fields if manager in sets else FieldSet()
        mine = (prev.union(cmp.modified).union(cmp.added).difference(cmp.removed)
                .recursive_difference(self.ignored))
        if mine:
            sets[manager] = Versioned(mine, version, False)
        else:
            sets.pop(manager, None)

    def apply(self, live: dict, config: dict, version: str, sets: dict[str, Versioned],
              manager: str, force: bool) -> dict | None:
        merged = sm.merge(live, config, self.typ)
        last = sets.get(manager)
        applied = sm.to_field_set(config, self.typ)
        if self.ignored:
            applied = applied.recursive_difference(self.ignored)
        sets[manager] = Versioned(applied, version, True)
        merged = self._prune(merged, sets, last)
        self._update(live, merged, version, sets, manager, force)
        return None if sm.equal(live, merged) else merged

    def _prune(self, merged: dict, sets: dict[str, Versioned], last: Versioned | None) -> dict:
        """Remove what the applier applied last time and no longer applies, unless
        another manager (or its new configuration) owns it."""
        if last is None or last.fields.empty():
            return merged
        t = self.typ
        named = sm.ensure_named_fields_are_members
        pruned = sm.remove_items(merged, named(last.fields, t), t)
        owned = FieldSet()
        for vs in sets.values():
            owned = owned.union(vs.fields)
        merged_set = named(sm.to_field_set(merged, t), t)
        pruned_set = named(sm.to_field_set(pruned, t), t)
        pruned = sm.remove_items(merged, merged_set.difference(
            pruned_set.union(named(owned, t))), t)
        pruned_set = named(sm.to_field_set(pruned, t), t)
        dangling = merged_set.difference(pruned_set).intersection(named(last.fields, t))
        return sm.remove_items(merged, dangling, t)


# --- the field manager ------------------------------------------------------------------

def ignored_fields(typ: sm.Type, obj: dict, subresource: str,
                   has_status: bool | None) -> FieldSet:
    """The reset fields of a write: ``status`` for the main resource of a kind with a
    status subresource; everything but ``status`` for a status write."""
    if subresource == "status":
        names = set(typ.fields) | set(obj)
        return FieldSet({field(n) for n in names if n != "status"})
    if has_status is None:
        has_status = "status" in typ.fields
    if not subresource and has_status:
        return FieldSet({field("status")})
    return FieldSet()


def _strip(sets: dict[str, Versioned], ident: str) -> None:
    vs = sets.get(ident)
    if vs is None:
        return
    rest = vs.fields.difference(_STRIP)
    if rest.empty():
        del sets[ident]
    else:
        sets[ident] = Versioned(rest, vs.api_version, vs.applied)


def _cap(managed: Managed) -> None:
    """Merge the oldest Update entries into ``ancient-changes`` beyond ten."""
    updaters = [i for i, vs in managed.sets.items() if not vs.applied]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda i: (_seconds(managed.times.get(i)), i))
    first_of_version: dict[str, str] = {}
    length = len(updaters)
    for ident in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        vs = managed.sets[ident]
        bucket = identifier("ancient-changes", UPDATE, vs.api_version)
        first = first_of_version.get(vs.api_version)
        if first is None:
            first_of_version[vs.api_version] = ident
            continue
        if bucket not in managed.sets:
            managed.sets[bucket] = managed.sets.pop(first)
        managed.sets[bucket] = Versioned(vs.fields.union(managed.sets[bucket].fields),
                                         vs.api_version, vs.applied)
        del managed.sets[ident]
        length -= 1
        managed.times[bucket] = managed.times.pop(ident, None)


def _update(updater: _Updater, old: dict, new: dict, managed: Managed, ident: str,
            api_version: str, now: str) -> None:
    """The Update pipeline below skip-non-applied: record, stamp, cap."""
    sets = managed.sets
    updater.update(old, new, api_version, sets, _CURRENT)
    _strip(sets, _CURRENT)
    current = sets.pop(_CURRENT, None)
    if current is not None:
        prev = sets.get(ident)
        fields = current.fields if prev is None else current.fields.union(prev.fields)
        sets[ident] = Versioned(fields, current.api_version, current.applied)
        managed.times[ident] = now
    for gone in [i for i in managed.times if i not in sets]:
        del managed.times[gone]
    _cap(managed)


def track_update(old: dict | None, new: dict, *, manager: str, api_version: str,
                 subresource: str = "", schema: "str | dict | None | sm.Typer",
                 has_status: bool | None = None, now: str | None = None) -> None:
    """Set ``new["metadata"]["managedFields"]`` for a create (``old`` None), update or
    non-apply patch by ``manager`` at ``api_version``.

    ``schema`` is the kind's definition name, a custom resource's structural schema,
    or None (types deduced). ``has_status`` says whether the kind has a status
    subresource (None: whether its schema has ``status``). ``new`` is the object as
    it will be stored (defaults applied); its own managedFields are honoured when a
    client sets them (``[]`` resets), as upstream.
    """
    meta = new.setdefault("metadata", {})
    live_entries = ((old or {}).get("metadata") or {}).get("managedFields")
    try:
        if subresource:
            managed = _decode_or_empty(live_entries)
        elif "managedFields" in meta and _is_reset(meta["managedFields"]):
            managed = Managed.empty()
        else:
            managed = decode(meta.get("managedFields"))
            if not managed.sets:
                managed = _decode_or_empty(live_entries)
    except ManagedFieldsError:
        managed = _decode_or_empty(live_entries)
    meta.pop("managedFields", None)
    if not managed.sets and old is not None and (old.get("metadata") or {}).get("uid"):
        return  # skip-non-applied: an untracked object stays untracked until applied
    typer = sm.typer_for(schema)
    updater = _Updater(typer.root, ignored_fields(typer.root, new, subresource, has_status))
    ident = identifier(manager or "unknown", UPDATE, api_version, subresource)
    _update(updater, _without_managed(old), new, managed, ident, api_version, _now(now))
    _set_managed(new, managed)


def field_types(group: str, version: str, kind: str,
                custom: dict | None = None) -> sm.Typer:
    """How a kind's fields are typed, for ``schema=``: its v1.32 definition, else a
    custom resource's structural schema (``custom``), else deduced from values.
    Cached: build it once per resource, or call it per write."""
    name = schemas.definition_for(group, version, kind)
    if name:
        return sm.typer_for(name)
    if not isinstance(custom, dict):
        return sm.typer_for(None)
    hit = _CUSTOM_TYPERS.get(id(custom))
    if hit is None or hit[0] is not custom:
        if len(_CUSTOM_TYPERS) >= 256:
            del _CUSTOM_TYPERS[next(iter(_CUSTOM_TYPERS))]
        hit = _CUSTOM_TYPERS[id(custom)] = (custom, sm.typer_for(custom))
    return hit[1]


# id(schema) -> (schema, Typer); holding the schema keeps its id from being reused.
_CUSTOM_TYPERS: dict[int, tuple[dict, sm.Typer]] = {}


def field_set(obj: dict, schema: "str | dict | None | sm.Typer") -> FieldSet:
    """Every field ``obj`` sets, typed by ``schema`` (as ``track_update``'s)."""
    return sm.to_field_set(obj, sm.typer_for(schema).root)


def _decode_or_empty(entries: Any) -> Managed:
    try:
        return decode(entries)
    except ManagedFieldsError:
        return Managed.empty()


class ApplyError(Exception):
    """An apply request the field manager refuses: ``code`` 400 or 500, upstream text."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def apply(live: dict | None, config: dict, *, manager: str, api_version: str, kind: str,
          schema: "str | dict | None | sm.Typer", force: bool = False,
          subresource: str = "", has_status: bool | None = None,
          now: str | None = None) -> dict | None:
    """Server-side apply of ``config`` by ``manager`` onto ``live`` (None: creating).

    Returns the new object with its managedFields, or None when neither the object
    nor its managedFields change (nothing to write). Raises ``Conflict`` (409) or
    ``ApplyError``.
    """
    if config.get("apiVersion") != api_version or config.get("kind") != kind:
        group, _, version = (config.get("apiVersion") or "").rpartition("/")
        raise ApplyError(400, f"invalid object type: {group}/{version}, "
                              f"Kind={config.get('kind') or ''}")
    cmeta = config.get("metadata")
    if isinstance(cmeta, dict) and isinstance(cmeta.get("managedFields"), list):
        raise ApplyError(400, "metadata.managedFields must be nil")
    typer = sm.typer_for(schema)
    errs = sm.validate(config, typer.root)
    if errs:
        ns = (cmeta or {}).get("namespace") or ""
        name = (cmeta or {}).get("name") or ""
        group, _, version = api_version.rpartition("/")
        detail = errs[0] if len(errs) == 1 else "errors:\n" + "\n".join(
            "  " + e for e in errs)
        raise ApplyError(500, f"failed to create typed patch object ({ns}/{name}; "
                              f"{group}/{version}, Kind={kind}): {detail}")
    live_obj = _without_managed(live)
    try:
        managed = decode(((live or {}).get("metadata") or {}).get("managedFields"))
    except ManagedFieldsError as err:
        raise ApplyError(500, f"failed to decode managed fields: {err}") from None
    updater = _Updater(typer.root, ignored_fields(typer.root, config, subresource, has_status))
    ident = identifier(manager or "unknown", APPLY, api_version, subresource)
    stamp = _now(now)
    try:
        obj, managed = _apply(updater, live_obj, config, managed, ident, api_version,
                              subresource, force, stamp)
    except Conflict as conflict:
        allowed = None if manager != "kubectl" else _allowed_by_last_applied(
            live_obj, typer.root, api_version)
        if allowed is None:
            raise
        remaining = [(i, p) for i, p in conflict.conflicts if not allowed.has(p)]
        if remaining:
            raise Conflict(remaining) from None
        obj, managed = _apply(updater, live_obj, config, managed, ident, api_version,
                              subresource, True, stamp)
    # The result shares values with live and config: hand out a copy of its own.
    result = copy.deepcopy(obj)
    if manager == "kubectl" and _last_applied(result):
        result["metadata"]["annotations"][LAST_APPLIED] = _build_last_applied(config)
    _set_managed(result, managed)
    if live is not None and sm.equal(result, live):
        return None
    return result


def _apply(updater: _Updater, live: dict, config: dict, managed: Managed, ident: str,
           api_version: str, subresource: str, force: bool, now: str) -> tuple[dict, Managed]:
    managed = managed.copy()
    if not managed.sets:
        # skip-non-applied: the first apply to an untracked object attributes its
        # current fields to "before-first-apply".
        before = identifier("before-first-apply", UPDATE, api_version, subresource)
        _update(updater, {}, live, managed, before, api_version, now)
    new = updater.apply(live, config, api_version, managed.sets, ident, force)
    _strip(managed.sets, ident)
    if new is not None:
        managed.times[ident] = now
    for gone in [i for i in managed.times if i not in managed.sets]:
        del managed.times[gone]
    return (new if new is not None else live), managed


def _last_applied(obj: dict) -> str:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED) or ""


def _build_last_applied(config: dict) -> str:
    """The applied configuration as the annotation records it (sorted keys, newline)."""
    cfg = copy.deepcopy(config)
    ann = (cfg.get("metadata") or {}).get("annotations")
    if isinstance(ann, dict):
        ann.pop(LAST_APPLIED, None)
    return go_json(cfg) + "\n"


def _allowed_by_last_applied(live: dict, typ: sm.Type, api_version: str) -> FieldSet | None:
    """Fields a client-side apply by kubectl set and still hold: conflicts on them do
    not stop kubectl's first server-side apply (``lastAppliedManager``)."""
    text = _last_applied(live)
    if not text:
        return None
    try:
        last = json.loads(text)
    except ValueError:
        return None
    if not isinstance(last, dict) or last.get("apiVersion") != api_version:
        return None
    cmp = sm.compare(last, live, typ)
    return (sm.to_field_set(last, typ).difference(cmp.modified).difference(cmp.added)
            .difference(cmp.removed))
