"""Discovery: which resources the server serves, cached per group-version.

Role: map ``(apiVersion, kind)`` and user-typed names (plural, singular, short name,
``plural.group``) to a ``Resource`` by reading ``/api``, ``/apis`` and the
``APIResourceList`` of each group-version, as client-go's cached discovery and
RESTMapper do.

Invariants:
- A group-version's resource list is fetched at most once until ``invalidate()``;
  a miss invalidates and looks once more (a CRD may have appeared since).
- Subresources (``pods/status``) never resolve as resources.
- Unknown kinds raise ``ApiError`` 404 with upstream's wording
  (``no matches for kind "X" in version "g/v"``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ApiError, status
from .resources import Resource

if TYPE_CHECKING:
    from .rest import Client


class ResourceMapper:
    def __init__(self, client: "Client"):
        self._client = client
        self._by_gv: dict[str, list[tuple[Resource, dict]]] = {}
        self._preferred: dict[str, str] | None = None

    def invalidate(self) -> None:
        self._by_gv.clear()
        self._preferred = None

    async def resources(self, api_version: str) -> list[Resource]:
        return [r for r, _ in await self._entries(api_version)]

    async def _entries(self, api_version: str) -> list[tuple[Resource, dict]]:
        if api_version not in self._by_gv:
            path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
            try:
                doc = await self._client.request("GET", path)
            except ApiError as err:
                if err.code != 404:
                    raise
                doc = {}
            group, _, version = api_version.rpartition("/")
            self._by_gv[api_version] = [
                (Resource(group, version, e["name"], e.get("kind", ""),
                          bool(e.get("namespaced"))), e)
                for e in doc.get("resources") or [] if "/" not in e["name"]]
        return self._by_gv[api_version]

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        for fresh in (False, True):
            if fresh:
                self._by_gv.pop(api_version, None)
            for res in await self.resources(api_version):
                if res.kind == kind:
                    return res
        raise ApiError(status(404, "NotFound",
                              message=f'no matches for kind "{kind}" in version "{api_version}"'))

    async def preferred_versions(self) -> dict[str, str]:
        """group -> preferred version, ``""`` (core) -> ``v1``."""
        if self._preferred is None:
            core = await self._client.request("GET", "/api")
            groups = await self._client.request("GET", "/apis")
            preferred = {"": (core.get("versions") or ["v1"])[0]}
            for g in groups.get("groups") or []:
                pv = g.get("preferredVersion") or (g.get("versions") or [{}])[0]
                preferred[g["name"]] = pv.get("version", "")
            self._preferred = preferred
        return self._preferred

    async def find(self, name: str) -> Resource:
        """A resource by plural, singular, short name or kind, optionally ``.group``."""
        for fresh in (False, True):
            if fresh:
                self.invalidate()
            found = await self._find(name.lower())
            if found:
                return found
        raise ApiError(status(404, "NotFound",
                              message=f'the server doesn\'t have a resource type "{name}"'))

    async def _find(self, name: str) -> Resource | None:
        preferred = await self.preferred_versions()
        for group, version in preferred.items():
            api_version = f"{group}/{version}" if group else version
            for res, entry in await self._entries(api_version):
                names = {res.plural, entry.get("singularName") or "", res.kind.lower(),
                         *(entry.get("shortNames") or [])}
                qualified = {f"{n}.{group}" for n in names if n} if group else set()
                if name in names or name in qualified:
                    return res
        return None
