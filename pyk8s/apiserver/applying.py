"""Server-side apply (``PATCH`` with ``application/apply-patch+yaml``) over the store.

Role: the HTTP-facing half of apply. ``managedfields.apply`` does the merge and the
ownership bookkeeping; this module reads the live object, creates it when missing
(201, as upstream's apply creates), writes through the generic store's
compare-and-swap (so a concurrent write re-runs the merge on the newer object),
and turns refusals into upstream's Status errors: 409 ``Conflict`` whose
``details.causes`` are ``FieldManagerConflict``s, 400 for a wrong kind, 500 for an
applied object that does not fit the schema.

Invariants:
- An apply that changes neither the object nor its managedFields writes nothing:
  the answer is the live object with its resourceVersion.
- The store is told (``WriteOptions.server_side_apply``) that managedFields are
  already set, so it does not also record the write as an ``Update``.
- Nothing here edits the request body; merges work on copies.
"""
from __future__ import annotations

from ..api import managedfields
from ..api.structuredmerge import Typer
from ..registry.generic import GenericStore, WriteOptions
from ..api import errors


def field_types(store: GenericStore) -> Typer:
    """How a resource's fields are typed: its v1.32 definition, a custom resource's
    structural schema, or (no schema) types deduced from the values."""
    return managedfields.field_types(store.info.group, store.strategy.version,
                                     store.strategy.kind,
                                     getattr(store.strategy, "schema", None))


async def apply(store: GenericStore, namespace: str, name: str, body: dict,
                opts: WriteOptions, *, force: bool, subresource: str) -> tuple[dict, bool]:
    """Apply ``body`` as ``opts.field_manager``; returns (object, created)."""
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match "
                                 f"the name on the URL ({name})")
    # The store must not record this write again as an Update by the same manager.
    opts.server_side_apply = True
    schema = field_types(store)
    strategy = store.strategy

    def run(live: dict | None) -> dict | None:
        try:
            return managedfields.apply(
                live, body, manager=opts.field_manager, api_version=strategy.api_version,
                kind=strategy.kind, schema=schema, force=force, subresource=subresource,
                has_status=strategy.has_status)
        except managedfields.Conflict as conflict:
            raise errors.APIError(409, "Conflict", conflict.message,
                                  details={"causes": conflict.causes()}) from None
        except managedfields.ApplyError as err:
            if err.code == 400:
                raise errors.bad_request(err.message) from None
            # Upstream passes these through as a bare error: 500 without a reason.
            raise errors.APIError(err.code, "", err.message) from None

    def transform(old: dict) -> dict:
        out = run(old)
        return old if out is None else out

    try:
        await store.read_latest(namespace, name)
    except errors.APIError as err:
        if err.code != 404 or subresource:
            raise
        created = await _create(store, namespace, name, run(None), opts)
        if created is not None:
            return created, True
    return await store.patch(namespace, name, transform, opts, subresource=subresource), False


async def _create(store: GenericStore, namespace: str, name: str, obj: dict | None,
                  opts: WriteOptions) -> dict | None:
    """Create the object apply built from nothing; None if it appeared meanwhile."""
    obj = obj or {}
    obj.setdefault("metadata", {}).setdefault("name", name)
    try:
        return await store.create(namespace, obj, opts)
    except errors.APIError as err:
        if err.code == 409 and err.reason == "AlreadyExists":
            return None  # apply to what is there now
        raise
