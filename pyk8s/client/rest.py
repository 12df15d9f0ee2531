"""The async REST client: CRUD, lists and watches over a ``Transport``.

Role: the only way components other than the API server reach the cluster. Objects
are addressed by a ``Resource`` (group, version, plural) plus namespace, name and
subresource, or by ``(apiVersion, kind)`` resolved through discovery
(``discovery.ResourceMapper``). Bodies are JSON (orjson); a non-2xx answer raises
``ApiError``; a missing answer raises ``TransportError``.

Invariants:
- Objects returned by ``list`` carry ``apiVersion`` and ``kind`` (servers omit them
  on list items; the client fills them in from the list, as client-go's
  unstructured lists do).
- Answers with ``429`` or a ``Retry-After`` header are retried after the delay the
  server asks for (at most ``max_retries`` times, as client-go), on the client's
  clock; nothing else is retried here.
- ``watch`` is a single watch request (see ``watching`` for list-then-watch and the
  reconnecting loop); it raises ``ApiError`` for an ``ERROR`` event and ends when the
  server ends the stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Union

import orjson

from .clock import REAL_CLOCK, Clock
from .config import ClientConfig
from .discovery import ResourceMapper
from .errors import ApiError
from .resources import Resource
from .transport import AiohttpTransport, Request, Response, Transport, TransportError

__all__ = ["Client", "ApiError", "TransportError", "WatchEvent", "ResourceMapper",
           "PATCH_TYPES"]

JSON = "application/json"
PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}

# A resource reference: a Resource, or (apiVersion, kind) for discovery.
ResourceRef = Union[Resource, tuple[str, str]]


@dataclass
class WatchEvent:
    """One event of a watch: ADDED, MODIFIED, DELETED or BOOKMARK."""

    type: str
    object: dict

    @property
    def resource_version(self) -> str:
        return (self.object.get("metadata") or {}).get("resourceVersion") or ""


class Client:
    """An API client bound to one server and identity (its transport)."""

    def __init__(self, config: ClientConfig | None = None, *,
                 transport: Transport | None = None, clock: Clock = REAL_CLOCK,
                 max_retries: int = 10):
        if transport is None:
            if config is None:
                raise ValueError("a Client needs a ClientConfig or a Transport")
            transport = AiohttpTransport(config)
        self.transport = transport
        self.config = config
        self.clock = clock
        self.max_retries = max_retries
        self.mapper = ResourceMapper(self)

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- plumbing ----------------------------------------------------------------

    async def resolve(self, ref: ResourceRef) -> Resource:
        if isinstance(ref, Resource):
            return ref
        api_version, kind = ref
        return await self.mapper.resource_for(api_version, kind)

    async def request(self, method: str, path: str, *,
                      params: Iterable[tuple[str, str]] = (), body: Any = None,
                      content_type: str = JSON, timeout: float | None = None) -> Any:
        """One request with a JSON answer (decoded), retrying 429/Retry-After answers."""
        data = orjson.dumps(body) if body is not None else None
        req = Request(method, path, params=list(params), body=data,
                      content_type=content_type if data is not None else None, timeout=timeout)
        for attempt in range(self.max_retries + 1):
            resp = await self.transport.request(req)
            delay = self._retry_after(resp)
            if delay is None or attempt == self.max_retries:
                break
            await self.clock.sleep(delay)
        if resp.status >= 300:
            raise ApiError.from_response(resp.status, resp.body)
        return orjson.loads(resp.body) if resp.body else None

    @staticmethod
    def _retry_after(resp: Response) -> float | None:
        if resp.status != 429 and not (resp.status >= 500 and "Retry-After" in resp.headers):
            return None
        try:
            return min(max(float(resp.headers.get("Retry-After", "1")), 0.0), 60.0)
        except ValueError:
            return 1.0

    @staticmethod
    def _namespace(res: Resource, namespace: str | None,
                   body: dict | None = None) -> str | None:
        """The namespace to address: explicit, else the body's; None if cluster-scoped."""
        if not res.namespaced:
            return None
        namespace = namespace or ((body or {}).get("metadata") or {}).get("namespace")
        if not namespace:
            raise ValueError(f"{res}: a namespace is required")
        return namespace

    # --- verbs -------------------------------------------------------------------

    async def get(self, ref: ResourceRef, name: str, *, namespace: str | None = None,
                  subresource: str | None = None,
                  params: Iterable[tuple[str, str]] = ()) -> dict:
        res = await self.resolve(ref)
        path = res.path(self._namespace(res, namespace), name, subresource=subresource)
        return await self.request("GET", path, params=params)

    async def list(self, ref: ResourceRef, *, namespace: str | None = None,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_token: str | None = None,
                   resource_version: str | None = None,
                   params: Iterable[tuple[str, str]] = ()) -> dict:
        """One page of a list; ``namespace=None`` lists across all namespaces."""
        res = await self.resolve(ref)
        q = _selectors(label_selector, field_selector) + list(params)
        if limit:
            q.append(("limit", str(limit)))
        if continue_token:
            q.append(("continue", continue_token))
        if resource_version is not None:
            q.append(("resourceVersion", resource_version))
        doc = await self.request("GET", res.path(namespace if res.namespaced else None),
                                 params=q)
        _fill_item_kinds(doc, res)
        return doc

    async def list_all(self, ref: ResourceRef, *, namespace: str | None = None,
                       label_selector: str | None = None, field_selector: str | None = None,
                       page_size: int = 500) -> dict:
        """Every page of a list, as one list whose resourceVersion is the snapshot's."""
        first: dict | None = None
        token = None
        while True:
            page = await self.list(ref, namespace=namespace, label_selector=label_selector,
                                   field_selector=field_selector, limit=page_size,
                                   continue_token=token)
            if first is None:
                first = page
            else:
                first["items"].extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        first.setdefault("items", [])
        (first.setdefault("metadata", {})).pop("continue", None)
        return first

    async def create(self, ref: ResourceRef, body: dict, *, namespace: str | None = None,
                     name: str | None = None, subresource: str | None = None,
                     dry_run: bool = False, field_manager: str | None = None,
                     params: Iterable[tuple[str, str]] = ()) -> dict:
        """POST to the collection, or to ``<name>/<subresource>`` (binding, eviction)."""
        res = await self.resolve(ref)
        path = res.path(self._namespace(res, namespace, body), name if subresource else None,
                        subresource=subresource)
        return await self.request("POST", path, body=body,
                                  params=_write_params(dry_run, field_manager) + list(params))

    async def update(self, ref: ResourceRef, body: dict, *, namespace: str | None = None,
                     subresource: str | None = None, dry_run: bool = False,
                     field_manager: str | None = None,
                     params: Iterable[tuple[str, str]] = ()) -> dict:
        """PUT the object (its ``metadata.resourceVersion`` makes it a compare-and-swap)."""
        res = await self.resolve(ref)
        name = (body.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("update needs metadata.name")
        path = res.path(self._namespace(res, namespace, body), name, subresource=subresource)
        return await self.request("PUT", path, body=body,
                                  params=_write_params(dry_run, field_manager) + list(params))

    async def update_status(self, ref: ResourceRef, body: dict, **kwargs: Any) -> dict:
        return await self.update(ref, body, subresource="status", **kwargs)

    async def patch(self, ref: ResourceRef, name: str, *, body: Any,
                    namespace: str | None = None, patch_type: str = "merge",
                    subresource: str | None = None, dry_run: bool = False,
                    field_manager: str | None = None, force: bool | None = None,
                    params: Iterable[tuple[str, str]] = ()) -> dict:
        """PATCH ``body`` as ``patch_type``: json, merge, strategic or apply."""
        res = await self.resolve(ref)
        q = _write_params(dry_run, field_manager) + list(params)
        if force is not None:
            q.append(("force", "true" if force else "false"))
        path = res.path(self._namespace(res, namespace), name, subresource=subresource)
        return await self.request("PATCH", path, body=body, params=q,
                                  content_type=PATCH_TYPES[patch_type])

    async def delete(self, ref: ResourceRef, name: str, *, namespace: str | None = None,
                     propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict | None = None, dry_run: bool = False) -> dict:
        """DELETE; answers the object (with deletionTimestamp if finalizers hold it)."""
        res = await self.resolve(ref)
        path = res.path(self._namespace(res, namespace), name)
        return await self.request("DELETE", path, body=_delete_options(
            propagation_policy, grace_period_seconds=grace_period_seconds,
            preconditions=preconditions, dry_run=dry_run))

    async def delete_collection(self, ref: ResourceRef, *, namespace: str | None = None,
                                label_selector: str | None = None,
                                field_selector: str | None = None,
                                propagation_policy: str | None = None,
                                grace_period_seconds: int | None = None) -> dict:
        res = await self.resolve(ref)
        path = res.path(namespace if res.namespaced else None)
        return await self.request("DELETE", path,
                                  params=_selectors(label_selector, field_selector),
                                  body=_delete_options(
                                      propagation_policy, grace_period_seconds=grace_period_seconds,
                                      preconditions=None, dry_run=False))

    async def watch(self, ref: ResourceRef, *, namespace: str | None = None,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = False, read_timeout: float | None = None,
                    params: Iterable[tuple[str, str]] = ()) -> AsyncIterator[WatchEvent]:
        """One watch request: its events until the server ends it.

        ``read_timeout`` bounds the silence between events (``TransportError`` past
        it). An ``ERROR`` event raises ``ApiError`` with its Status (410 when the
        resourceVersion is too old).
        """
        res = await self.resolve(ref)
        q = [("watch", "true")] + _selectors(label_selector, field_selector) + list(params)
        if resource_version is not None:
            q.append(("resourceVersion", resource_version))
        if timeout_seconds:
            q.append(("timeoutSeconds", str(int(timeout_seconds))))
        if allow_bookmarks:
            q.append(("allowWatchBookmarks", "true"))
        req = Request("GET", res.path(namespace if res.namespaced else None), params=q,
                      read_timeout=read_timeout)
        async with self.transport.stream(req) as resp:
            if resp.status >= 300:
                raise ApiError.from_response(resp.status, await resp.read())
            async for line in resp.lines():
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError as err:
                    raise TransportError(f"undecodable watch event: {err}") from None
                kind, obj = doc.get("type"), doc.get("object") or {}
                if kind == "ERROR":
                    raise ApiError(obj if obj.get("kind") == "Status" else
                                   {"kind": "Status", "code": 500, "reason": "InternalError",
                                    "message": str(obj)})
                if kind != "BOOKMARK" and "kind" not in obj and res.kind:
                    obj["apiVersion"], obj["kind"] = res.api_version, res.kind
                yield WatchEvent(kind, obj)


def _selectors(label_selector: str | None, field_selector: str | None) -> list[tuple[str, str]]:
    q = []
    if label_selector:
        q.append(("labelSelector", label_selector))
    if field_selector:
        q.append(("fieldSelector", field_selector))
    return q


def _write_params(dry_run: bool, field_manager: str | None) -> list[tuple[str, str]]:
    q = []
    if dry_run:
        q.append(("dryRun", "All"))
    if field_manager:
        q.append(("fieldManager", field_manager))
    return q


def _delete_options(propagation_policy: str | None, *, grace_period_seconds: int | None,
                    preconditions: dict | None, dry_run: bool) -> dict:
    body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
    if propagation_policy:
        body["propagationPolicy"] = propagation_policy
    if grace_period_seconds is not None:
        body["gracePeriodSeconds"] = grace_period_seconds
    if preconditions:
        body["preconditions"] = preconditions
    if dry_run:
        body["dryRun"] = ["All"]
    return body


def _fill_item_kinds(doc: dict, res: Resource) -> None:
    kind = doc.get("kind") or ""
    kind = kind[:-4] if kind.endswith("List") else res.kind
    api_version = doc.get("apiVersion") or res.api_version
    for item in doc.get("items") or []:
        if "kind" not in item:
            item["apiVersion"], item["kind"] = api_version, kind

