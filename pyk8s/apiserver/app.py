"""The API server: one aiohttp application over the generic registry.

Routing is by path shape, not a route per resource, so CRDs appear without
re-registering routes: ``/api/v1/...`` and ``/apis/<group>/<version>/...`` resolve
to a GenericStore through the catalogue; discovery, OpenAPI, version and health
endpoints are plain documents. Every APIError becomes a Status body; an unexpected
exception becomes a 500 Status, never a traceback.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web

from ..registry import catalogue
from ..registry.catalogue import ResourceInfo
from ..registry.conversion import CONVERTED, ConvertingStore
from ..registry.generic import GenericStore
from ..registry.kinds import strategy_for
from ..storage import Store
from ..api import errors
from . import handlers, metricsapi, subresources
from .discovery import AGGREGATED_CTYPE, Discovery
from .openapi import OpenAPI
from .requests import Target, parse_path, wants_aggregated
from .security import Security, SecurityConfig
from ..registry.watchcache import WatchCache

log = logging.getLogger(__name__)

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-pyk8s",
           "gitCommit": "0000000000000000000000000000000000000000",
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
           "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"}

VERB_OF = {("GET", False): "get", ("GET", True): "list", ("POST", True): "create",
           ("PUT", False): "update", ("PATCH", False): "patch", ("DELETE", False): "delete",
           ("DELETE", True): "deletecollection"}


class APIServer:
    def __init__(self, store: Store, *, advertise: str = "127.0.0.1:6443",
                 service_cidr: str = "10.43.0.0/16", security: SecurityConfig | None = None,
                 metric_resolution: float = metricsapi.DEFAULT_RESOLUTION):
        self.store = store
        self.advertise = advertise
        self.cache = WatchCache(store)
        self.discovery = Discovery(advertise)
        self.openapi = OpenAPI()
        self.service_cidr = service_cidr
        self.stores: dict[tuple[str, str, str], GenericStore] = {}
        self.resources: dict[tuple[str, str, str], ResourceInfo] = {}
        self.ready = False
        from .crds import CRDController
        self.crds = CRDController(self)
        self._register(list(catalogue.RESOURCES) + list(metricsapi.RESOURCES))
        self.security = Security(self, security)
        from .nodeproxy import KubeletClient
        self.kubelet_client = KubeletClient(security.data_dir if security else "")
        self.metrics = metricsapi.Scraper(self, metric_resolution)

    # -- registry ------------------------------------------------------------------

    def _register(self, infos) -> None:
        # The preferred version of a resource is served first; another version of a
        # stored resource needs conversion, which only lands with CRD conversion, so
        # it is left out of discovery rather than served with the wrong shape.
        ordered = sorted(infos, key=lambda r: r.version != catalogue.preferred_version(
            r.group))
        served: set[tuple[str, str]] = set()
        for info in ordered:
            if info.storage and ((info.group, info.plural) in served or
                                 (info.group, info.version, info.plural) in CONVERTED):
                continue
            self.resources[(info.group, info.version, info.plural)] = info
            if not info.storage:
                continue
            served.add((info.group, info.plural))
            strategy = strategy_for(info, info.version, info.kind)
            self.stores[(info.group, info.version, info.plural)] = GenericStore(
                info, self.store, self.cache, strategy, admit=self._admit)
        for info in ordered:
            key = (info.group, info.version, info.plural)
            if key in CONVERTED and CONVERTED[key][0] in self.stores:
                storage_key, codec = CONVERTED[key]
                self.resources[key] = info
                self.stores[key] = ConvertingStore(info, self.stores[storage_key], codec)
        self._refresh_documents()

    def _refresh_documents(self) -> None:
        served = list(self.resources.values())
        order = [(g, list(vs)) for g, vs in catalogue.GROUP_ORDER]
        known = {g for g, _ in order}
        custom: dict[str, list[str]] = {}
        for r in served:
            if r.group not in known:
                versions = custom.setdefault(r.group, [])
                if r.version not in versions:
                    versions.append(r.version)
        order += sorted((g, sorted(vs, key=_version_priority)) for g, vs in custom.items())
        self.discovery.update(served, order)
        self.openapi.update(served, self.crds.openapi_schemas())

    def is_plural(self, group: str, version: str, segment: str) -> bool:
        return (group, version, segment) in self.resources

    async def _admit(self, operation: str, obj: dict | None, old: dict | None,
                     store: GenericStore) -> None:
        """The admission chain (security.py): mutating, then validating plugins."""
        await self.security.admit(operation, obj, old, store)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        await self.cache.start()
        from .bootstrap import ensure_defaults
        await ensure_defaults(self)
        await self.security.start()
        await metricsapi.ensure_reader_role(self)
        self.crds.start()
        self.metrics.start()
        self.ready = True

    async def close(self) -> None:
        await self.metrics.close()
        await self.security.close()
        await self.crds.close()
        await self.cache.close()
        await self.store.close()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=3 * 1024 * 1024,
                              middlewares=[self._errors_middleware,
                                           self.security.middleware])
        app.router.add_route("*", "/{tail:.*}", self.route)
        return app

    @web.middleware
    async def _errors_middleware(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.APIError as err:
            return web.Response(body=orjson.dumps(err.status()), status=err.code,
                                content_type="application/json")
        except web.HTTPException:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug: answer as upstream's InternalError, log it
            log.exception("unhandled error serving %s %s", request.method, request.path)
            e = errors.internal(str(err) or type(err).__name__)
            return web.Response(body=orjson.dumps(e.status()), status=500,
                                content_type="application/json")

    # -- routing -------------------------------------------------------------------

    async def route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if len(path) > 1:
            path = path.rstrip("/")
        if path in ("/version", "/version/"):
            return handlers.respond(VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            ok = self.ready or path == "/livez"
            return web.Response(text="ok" if ok else "[-]not ready",
                                status=200 if ok else 500)
        if path.startswith("/openapi/v3"):
            return self._openapi(path)
        if path == "/openapi/v2" and request.method == "GET":
            from . import openapiv2
            return openapiv2.serve(self.openapi, request)
        served = self.security.serve_nonresource(request, path)
        if served is not None:
            return served
        if path in ("/api", "/apis"):
            return self._discovery_root(request, path)
        doc = self.discovery.docs.get(path)
        if doc is not None and request.method == "GET":
            return web.Response(body=doc, content_type="application/json")
        t = parse_path(path, self.is_plural)
        if t is None or not t.plural:
            raise errors.page_not_found()
        return await self._resource(request, t)

    def _discovery_root(self, request: web.Request, path: str) -> web.Response:
        if wants_aggregated(request.headers.get("Accept", "")):
            return web.Response(body=self.discovery.docs[path + "#agg"],
                                headers={"Content-Type": AGGREGATED_CTYPE})
        return web.Response(body=self.discovery.docs[path], content_type="application/json")

    def _openapi(self, path: str) -> web.Response:
        rest = path[len("/openapi/v3"):].strip("/")
        body = self.openapi.index() if not rest else self.openapi.document(rest)
        if body is None:
            raise errors.page_not_found()
        return web.Response(body=body, content_type="application/json")

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        info = self.resources.get((t.group, t.version, t.plural))
        if info is None:
            raise errors.page_not_found()
        if t.namespace and not info.namespaced:
            raise errors.page_not_found()
        collection = not t.name
        verb = VERB_OF.get((request.method, collection))
        if t.subresource:
            served = await self.security.serve_subresource(request, info, t)
            if served is not None:
                return served
            return await subresources.serve(self, request, info, t)
        if verb is None or verb not in info.verbs:
            if verb == "get" and request.method == "GET" and request.query.get("watch"):
                verb = "watch"
            else:
                raise errors.method_not_allowed(_verb_word(request.method, collection),
                                                info.plural, info.group)
        if info.group == metricsapi.GROUP:
            return await metricsapi.serve(self, self.metrics, request, info, t)
        if (info.group, info.plural) == ("", "componentstatuses"):
            from . import componentstatus
            return await componentstatus.serve(self, request, info, t)
        if not info.storage:
            return await self.security.serve_virtual(request, info, t)
        store = self.stores[(t.group, t.version, t.plural)]
        if info.namespaced and not t.namespace and verb not in ("list", "watch",
                                                                "deletecollection"):
            raise errors.page_not_found()
        handler = {"get": handlers.get, "list": handlers.list_, "create": handlers.create,
                   "update": handlers.update, "patch": handlers.patch,
                   "delete": handlers.delete,
                   "deletecollection": handlers.delete_collection}[verb]
        if verb == "get" and request.query.get("watch") in ("true", "1"):
            return await handlers.watch(store, request, t)
        return await handler(store, request, t)


def _version_priority(version: str) -> tuple:
    """Kubernetes version order: GA before beta before alpha, higher numbers first."""
    import re
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor, version)


def _verb_word(method: str, collection: str) -> str:
    return {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "deletecollection" if collection else "delete"}.get(method,
                                                                          method.lower())


def json_body(obj: Any) -> bytes:
    return orjson.dumps(obj)
