"""REST verbs over GenericStore: the HTTP face of the generic registry.

Each handler reads the query and body of one request, calls the resource's store,
and renders the answer (object, list, Table or watch stream). Errors surface as
APIError and become Status bodies in app.py; nothing here catches them.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from typing import Any, Callable

import orjson
from aiohttp import web

from pyk8s import aio
from ..api import patches, schemas, selectors
from ..registry import generic
from ..registry.generic import DeleteOptions, GenericStore, WriteOptions
from ..api import errors
from . import fields, tables
from .security import warning_header
from .requests import Target, bool_param, content_type, decode_body, int_param, wants_table

log = logging.getLogger(__name__)
JSON = "application/json"
WATCH_CAPACITY = 10_000
BOOKMARK_INTERVAL = 60.0


def respond(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {}
    if warnings:
        headers["Warning"] = ", ".join(warning_header(w) for w in warnings)
    return web.Response(body=orjson.dumps(obj), status=status, content_type=JSON,
                        headers=headers)


def write_options(request: web.Request) -> WriteOptions:
    q = request.query
    fv = q.get("fieldValidation") or "Warn"
    if fv not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation: Invalid value: "{fv}": must be one of Ignore, Warn, or Strict')
    dry = q.getall("dryRun", [])
    for d in dry:
        if d != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{d}": supported values: "All"')
    return WriteOptions(dry_run=bool(dry), field_validation=fv,
                        field_manager=q.get("fieldManager", ""),
                        user_agent=request.headers.get("User-Agent", ""))


# -- selection -------------------------------------------------------------------------

def predicate_for(store: GenericStore, query, namespace: str, name: str = "") -> Callable:
    label_sel = selectors.parse_label_selector(query.get("labelSelector", ""))
    field_sel = fields.parse(store.info, query.get("fieldSelector", ""))
    if name:
        field_sel = fields.with_name(field_sel, name)
    ns = namespace if store.info.namespaced else ""

    present = store.present if store.served_api_version != store.strategy.api_version \
        else None

    def matches(obj: dict) -> bool:
        if present is not None:
            obj = present(obj)
        meta = obj["metadata"]
        if ns and meta.get("namespace") != ns:
            return False
        if label_sel is not None and not label_sel.matches(meta.get("labels") or {}):
            return False
        return field_sel is None or field_sel(obj)
    return matches


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def render_list(store: GenericStore, request: web.Request, items: list[dict],
                list_meta: dict) -> web.Response:
    info = store.info
    if wants_table(request.headers.get("Accept", "")):
        table = tables.build_table(info.group, info.plural, items, now=now(),
                                   include_object=request.query.get("includeObject",
                                                                    "Metadata"),
                                   printer_columns=store.printer_columns)
        table["metadata"] = list_meta
        return respond(table)
    return respond({"kind": store.served_kind + "List",
                    "apiVersion": store.served_api_version,
                    "metadata": list_meta, "items": [store.present(o) for o in items]})


def render_object(store: GenericStore, request: web.Request, obj: dict,
                  status: int = 200, warnings: list[str] | None = None) -> web.Response:
    if wants_table(request.headers.get("Accept", "")) and request.method == "GET":
        info = store.info
        table = tables.build_table(info.group, info.plural, [obj], now=now(),
                                   include_object=request.query.get("includeObject",
                                                                    "Metadata"),
                                   printer_columns=store.printer_columns)
        table["metadata"] = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        return respond(table)
    return respond(store.present(obj), status, warnings)


# -- verbs -----------------------------------------------------------------------------

async def get(store: GenericStore, request: web.Request, t: Target) -> web.Response:
    return render_object(store, request, await store.get(t.namespace, t.name))


async def list_(store: GenericStore, request: web.Request, t: Target) -> web.StreamResponse:
    q = request.query
    if bool_param(q.get("watch")):
        return await watch(store, request, t)
    predicate = predicate_for(store, q, t.namespace)
    limit = int_param(q, "limit", 0) or 0
    token = q.get("continue", "")
    rv = q.get("resourceVersion", "")
    match = q.get("resourceVersionMatch", "")
    prefix = store.prefix(t.namespace)
    cache = store.cache
    wc = store.watchcache
    if token:
        if rv:
            raise errors.bad_request("specifying resource version is not allowed when "
                                     "using continue")
        rev, start = _decode_continue(token, prefix)
        if rev == _LATEST:
            # An "inconsistent continue" token (from a 410 below): the rest of the list
            # at the latest revision, as upstream does for resourceVersion -1.
            return await _page_from_store(store, request, prefix, 0, start, limit, predicate)
        if rev == wc.revision:
            return _page_from_cache(store, request, cache, prefix, start, limit, predicate, rev)
        return await _page_from_store(store, request, prefix, rev, start, limit, predicate)
    if match == "Exact" or (rv not in ("", "0") and limit and match != "NotOlderThan"):
        if not rv or rv == "0":
            raise errors.bad_request("resourceVersionMatch: Forbidden: resourceVersionMatch "
                                     "\"Exact\" is forbidden for resourceVersion \"0\"")
        return await _page_from_store(store, request, prefix, _rv(rv), prefix, limit,
                                      predicate)
    if rv == "":
        await wc.sync()
    elif rv != "0":
        if not await wc.wait_for(_rv(rv)):
            raise errors.timeout(f"Too large resource version: {rv}, current: {wc.revision}")
    return _page_from_cache(store, request, cache, prefix, prefix, limit, predicate,
                            wc.revision)


_LATEST = -1  # a continue token's resourceVersion meaning "continue at the latest"

# Upstream's messages (k8s.io/apiserver/pkg/storage/etcd3/errors.go).
_EXPIRED_LIST = "The resourceVersion for the provided list is too old."
_INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You "
    "can start a new list without the continue parameter, or use the continue token in "
    "this response to retrieve the remainder of the results. Continuing with the "
    "provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list.")


class _ExpiredContinue(errors.APIError):
    """410 Expired whose Status carries a continue token for the inconsistent rest."""

    def __init__(self, token: str):
        super().__init__(410, "Expired", _INCONSISTENT_CONTINUE)
        self.token = token

    def status(self) -> dict[str, Any]:
        body = super().status()
        body["metadata"] = {"continue": self.token}
        return body


def _decode_continue(token: str, prefix: str) -> tuple[int, str]:
    """generic.decode_continue, also accepting resourceVersion -1 (upstream's token for
    an inconsistent continue, which our 410 hands out): returns (_LATEST, start)."""
    import base64
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        data = None
    if isinstance(data, dict) and data.get("rv") == _LATEST:
        # Validate everything else the usual way, with a placeholder revision.
        probe = base64.urlsafe_b64encode(orjson.dumps(dict(data, rv=1))).decode()
        return _LATEST, generic.decode_continue(probe, prefix)[1]
    return generic.decode_continue(token, prefix)


def _rv(rv: str) -> int:
    try:
        value = int(rv)
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        raise errors.bad_request(f"invalid resource version: {rv!r}") from None


def _page_from_cache(store, request, cache, prefix, start, limit, predicate, rev):
    end = generic.prefix_end(prefix)
    matches = ((k, o) for k, o in cache.items(start, end) if predicate(o))
    page, more = generic.paginate(matches, limit)
    cont = generic.encode_continue(rev, page[-1][0], prefix) if more else ""
    remaining = None
    if more and generic.counts_remaining(request.query):
        # As upstream's store: the keys after the page, counted only when no
        # selector filters them (the count would otherwise be a guess).
        remaining = cache.count(page[-1][0] + "\x00", end)
    return render_list(store, request, [o for _, o in page],
                       generic.list_meta_dict(rev, cont, remaining))


async def _page_from_store(store, request, prefix, rev, start, limit, predicate):
    """A page read from storage at ``rev`` (0: the latest, then pinned to the revision
    the first read saw), starting at ``start`` (the prefix, or a continue token's key)."""
    from ..storage import Compacted, FutureRevision
    page: list[dict] = []
    after = start if start != prefix else ""
    more = False
    while True:
        try:
            res = await store.store.list(prefix, revision=rev, start_after=after,
                                         limit=max(limit, 500) if limit else 0)
        except Compacted:
            if start != prefix:
                # A continue token from before the compaction: upstream offers the
                # rest of the list at the latest revision (resourceVersion -1).
                raise _ExpiredContinue(generic.encode_continue(
                    _LATEST, start[:-1] if start.endswith("\x00") else start,
                    prefix)) from None
            raise errors.gone(_EXPIRED_LIST) from None
        except FutureRevision as err:
            raise errors.timeout(f"Too large resource version: {rev}, current: "
                                 f"{err.current}") from None
        for kv in res.items:
            obj = generic.decode_stored(kv)
            if predicate(obj):
                if limit and len(page) == limit:
                    more = True
                    break
                page.append((kv.key, obj))
        if more or not res.more:
            break
        after = res.items[-1].key
        rev = res.revision  # later reads stay consistent with the first
    cont = generic.encode_continue(res.revision, page[-1][0], prefix) if more else ""
    return render_list(store, request, [o for _, o in page],
                       generic.list_meta_dict(res.revision, cont))


async def create(store: GenericStore, request: web.Request, t: Target) -> web.Response:
    obj = decode_body(await request.read(), content_type(request))
    _require_object(obj)
    opts = write_options(request)
    out = await store.create(t.namespace, obj, opts)
    return respond(store.present(out), 201, opts.warnings)


async def update(store: GenericStore, request: web.Request, t: Target) -> web.Response:
    obj = decode_body(await request.read(), content_type(request))
    _require_object(obj)
    opts = write_options(request)
    out, created = await store.update(t.namespace, t.name, obj, opts,
                                      subresource=t.subresource)
    return respond(store.present(out), 201 if created else 200, opts.warnings)


def _require_object(obj: Any) -> None:
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON or YAML object")


async def patch(store: GenericStore, request: web.Request, t: Target) -> web.Response:
    ctype = content_type(request)
    raw = await request.read()
    body = decode_body(raw, ctype)
    opts = write_options(request)
    if ctype == patches.APPLY_PATCH:
        return await apply_patch(store, request, t, body, opts)
    if "force" in request.query:
        raise errors.invalid("PatchOptions", "meta.k8s.io", "", [errors.cause(
            "force", "Forbidden: may not be specified for non-apply patch",
            "FieldValueForbidden")])
    if ctype not in patches.PATCH_CONTENT_TYPES:
        raise errors.APIError(
            415, "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types "
            f"include: application/json-patch+json, application/merge-patch+json, "
            f"application/apply-patch+yaml, application/strategic-merge-patch+json "
            f"(got {ctype})")
    schema = schemas.definition_for(store.info.group, store.info.version, store.info.kind)
    if ctype == patches.STRATEGIC_MERGE_PATCH and schema is None:
        raise errors.APIError(415, "UnsupportedMediaType",
                              "the body of the request was in an unknown format - accepted "
                              "media types include: application/json-patch+json, "
                              "application/merge-patch+json, application/apply-patch+yaml")

    def transform(old: dict) -> dict:
        try:
            return patches.apply_patch(old, body, ctype, schema=schema)
        except patches.PatchError as err:
            reason = {400: "BadRequest", 422: "Invalid"}.get(err.code, "InternalError")
            raise errors.APIError(err.code, reason, str(err)) from None
    out = await store.patch(t.namespace, t.name, transform, opts, subresource=t.subresource)
    return respond(store.present(out), 200, opts.warnings)


async def apply_patch(store: GenericStore, request: web.Request, t: Target, body: Any,
                      opts: WriteOptions) -> web.Response:
    """Server-side apply: create when missing, else merge the applied configuration."""
    from . import applying
    _require_object(body)
    if not opts.field_manager:
        raise errors.invalid("PatchOptions", "meta.k8s.io", "", [errors.cause(
            "fieldManager", "Required value: is required for apply patch",
            "FieldValueRequired")])
    force = bool_param(request.query.get("force"))
    out, created = await applying.apply(store, t.namespace, t.name, body, opts,
                                        force=force, subresource=t.subresource)
    return respond(store.present(out), 201 if created else 200, opts.warnings)


async def delete_options(request: web.Request) -> DeleteOptions:
    q = request.query
    body: dict = {}
    raw = await request.read()
    if raw:
        parsed = decode_body(raw, content_type(request))
        if isinstance(parsed, dict):
            body = parsed
    pre = body.get("preconditions") or {}
    grace = body.get("gracePeriodSeconds")
    if grace is None:
        grace = int_param(q, "gracePeriodSeconds")
    policy = body.get("propagationPolicy") or q.get("propagationPolicy")
    if body.get("orphanDependents") is True or q.get("orphanDependents") == "true":
        policy = policy or "Orphan"
    if policy not in (None, "Background", "Foreground", "Orphan"):
        raise errors.bad_request(f'propagationPolicy: Unsupported value: "{policy}": '
                                 f'supported values: "Foreground", "Background", "Orphan"')
    dry = body.get("dryRun") or q.getall("dryRun", [])
    return DeleteOptions(grace_period=grace, propagation=policy,
                         precondition_uid=pre.get("uid"),
                         precondition_rv=pre.get("resourceVersion"), dry_run=bool(dry))


async def delete(store: GenericStore, request: web.Request, t: Target) -> web.Response:
    opts = await delete_options(request)
    obj, _ = await store.delete(t.namespace, t.name, opts)
    return respond(store.present(obj), 200)


async def delete_collection(store: GenericStore, request: web.Request,
                            t: Target) -> web.Response:
    opts = await delete_options(request)
    await store.watchcache.sync()
    predicate = predicate_for(store, request.query, t.namespace)
    end = generic.prefix_end(store.prefix(t.namespace))
    victims = [o for _, o in store.cache.items(store.prefix(t.namespace), end)
               if predicate(o)]
    deleted = []
    for obj in victims:
        meta = obj["metadata"]
        try:
            out, _ = await store.delete(meta.get("namespace", ""), meta["name"], opts)
        except errors.APIError as err:
            if err.code == 404:
                continue
            raise
        deleted.append(store.present(out))
    return respond({"kind": store.served_kind + "List",
                    "apiVersion": store.served_api_version,
                    "metadata": {"resourceVersion": str(store.watchcache.revision)},
                    "items": deleted})


# -- watch -----------------------------------------------------------------------------

async def watch(store: GenericStore, request: web.Request, t: Target) -> web.StreamResponse:
    q = request.query
    predicate = predicate_for(store, q, t.namespace, t.name)
    rv = q.get("resourceVersion", "")
    wc = store.watchcache
    timeout = int_param(q, "timeoutSeconds", 0) or 0
    bookmarks = bool_param(q.get("allowWatchBookmarks"))
    as_table = wants_table(request.headers.get("Accept", ""))
    if rv in ("", "0"):
        if rv == "":
            await wc.sync()
        after = -1
    else:
        after = _rv(rv)
        if not await wc.wait_for(after):
            raise errors.timeout(f"Too large resource version: {rv}, current: {wc.revision}")
    resp = web.StreamResponse(headers={"Content-Type": JSON,
                                       "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    cache = store.cache
    if after >= 0 and after < cache.window_start:
        # As upstream's watch cache: 200 and one ERROR event carrying 410 Expired, so
        # clients (reflectors, kubectl get -w) know to relist.
        await resp.prepare(request)
        expired = errors.resource_expired(after, cache.window_start).status()
        await resp.write(orjson.dumps({"type": "ERROR", "object": expired}) + b"\n")
        await resp.write_eof()
        return resp
    watcher = cache.watch(after, predicate, capacity=WATCH_CAPACITY)
    try:
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        next_bookmark = loop.time() + BOOKMARK_INTERVAL
        include = q.get("includeObject", "Metadata")
        while True:
            wait = next_bookmark - loop.time()
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    break
            try:
                item = await aio.wait_for(watcher.queue.get(), max(wait, 0))
            except asyncio.TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    break
                if bookmarks:
                    await resp.write(_bookmark(store, wc.revision))
                next_bookmark = loop.time() + BOOKMARK_INTERVAL
                continue
            if item is None:
                break  # dropped as too slow, or the cache relisted
            kind, obj = item
            if as_table:
                rv_now = obj["metadata"].get("resourceVersion", "")
                obj = tables.build_table(store.info.group, store.info.plural, [obj],
                                         now=now(), include_object=include,
                                         printer_columns=store.printer_columns)
                obj["metadata"] = {"resourceVersion": rv_now}
            else:
                obj = store.present(obj)
            await resp.write(orjson.dumps({"type": kind, "object": obj}) + b"\n")
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
    except ConnectionResetError:
        # The client left; nothing to tell it.
        return resp
    except Exception:
        # The status line is sent: a Status body can no longer be the answer. End the
        # stream so the client relists, and keep the error for the operator.
        log.exception("watch on %s failed", request.path)
        with contextlib.suppress(Exception):
            await resp.write_eof()
        return resp
    finally:
        watcher.stop()
    return resp


def _bookmark(store: GenericStore, revision: int) -> bytes:
    return orjson.dumps({"type": "BOOKMARK", "object": {
        "kind": store.served_kind, "apiVersion": store.served_api_version,
        "metadata": {"resourceVersion": str(revision)}}}) + b"\n"
