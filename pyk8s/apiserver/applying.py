"""Server-side apply, first cut: create when missing, else merge the applied
configuration into the live object by the schema's merge keys.

What is not here yet (README, issue 3): field ownership sets in ``managedFields``,
conflict detection between managers (409 FieldManagerConflict) and removal of
fields a manager stops applying. The manager and time of each apply are recorded
in ``managedFields`` with operation ``Apply``.
"""
from __future__ import annotations

import copy

from ..api import meta as metautil
from ..api import patches, schemas
from ..registry.generic import GenericStore, WriteOptions
from . import errors


def _record(obj: dict, manager: str, api_version: str) -> None:
    entries = [e for e in obj["metadata"].get("managedFields") or []
               if not (e.get("manager") == manager and e.get("operation") == "Apply")]
    entries.append({"manager": manager, "operation": "Apply", "apiVersion": api_version,
                    "time": metautil.now(), "fieldsType": "FieldsV1", "fieldsV1": {}})
    obj["metadata"]["managedFields"] = entries


async def apply(store: GenericStore, namespace: str, name: str, body: dict,
                opts: WriteOptions, *, force: bool, subresource: str) -> tuple[dict, bool]:
    meta = body.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match "
                                 f"the name on the URL ({name})")
    api_version = store.strategy.api_version
    try:
        await store.read_latest(namespace, name)
    except errors.APIError as err:
        if err.code != 404 or subresource:
            raise
        obj = copy.deepcopy(body)
        obj.setdefault("metadata", {})["name"] = name
        _record(obj, opts.field_manager, api_version)
        return await store.create(namespace, obj, opts), True
    schema = schemas.definition_for(store.info.group, store.strategy.version,
                                    store.strategy.kind)
    applied = copy.deepcopy(body)
    applied.get("metadata", {}).pop("managedFields", None)

    def transform(old: dict) -> dict:
        try:
            if schema is not None:
                new = patches.apply_patch(old, applied, patches.STRATEGIC_MERGE_PATCH,
                                          schema=schema)
            else:
                new = patches.apply_patch(old, applied, patches.MERGE_PATCH)
        except patches.PatchError as err:
            raise errors.APIError(err.code, "BadRequest" if err.code == 400 else "Invalid",
                                  str(err)) from None
        known = any(e.get("manager") == opts.field_manager and e.get("operation") == "Apply"
                    for e in old["metadata"].get("managedFields") or [])
        if known and new == old:
            return old  # a no-op apply writes nothing, as upstream
        _record(new, opts.field_manager, api_version)
        return new
    out = await store.patch(namespace, name, transform, opts, subresource=subresource)
    return out, False
