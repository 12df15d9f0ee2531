"""ClusterRole aggregation (pkg/controller/clusterroleaggregation).

A ClusterRole with an ``aggregationRule`` holds the union of the rules of every
other ClusterRole its label selectors match (in name order, duplicates dropped);
that is how ``admin``, ``edit`` and ``view`` get their rules and how a CRD's roles
join them. It runs inside the API server, woken by the ClusterRole cache, and
reconciles every aggregated role until none changes, so chains (view -> edit ->
admin) settle in one pass.

Invariant: an aggregated role's rules are a function of the other ClusterRoles;
``reconcile_all`` can run any number of times.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import TYPE_CHECKING

from ...api import selectors
from ...registry.generic import WriteOptions
from ...api import errors

if TYPE_CHECKING:
    from ..app import APIServer

log = logging.getLogger(__name__)
GROUP = "rbac.authorization.k8s.io"


def aggregated_rules(role: dict, roles: list[dict]) -> list[dict]:
    selector_list = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
    parsed = [selectors.label_selector_from_dict(s) for s in selector_list]
    matched = [r for r in roles if r["metadata"]["name"] != role["metadata"]["name"] and
               any(s.matches(r["metadata"].get("labels") or {}) for s in parsed)]
    out: list[dict] = []
    for r in sorted(matched, key=lambda o: o["metadata"]["name"]):
        for rule in r.get("rules") or ():
            if rule not in out:
                out.append(rule)
    return out


class Aggregator:
    def __init__(self, server: "APIServer"):
        self.server = server
        self.store = server.stores[(GROUP, "v1", "clusterroles")]
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._cache = None

    def start(self) -> None:
        self._watch_cache()
        self._wake.set()
        # A fresh context: the loop's writes are the API server's own, never a request's.
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="clusterrole-aggregation", context=contextvars.Context())

    def _watch_cache(self) -> None:
        cache = self.store.cache
        if cache is not self._cache:
            self._cache = cache
            cache.listeners.append(lambda kind, obj, prev: self._wake.set())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.reconcile_all()
            except Exception:
                log.exception("ClusterRole aggregation failed")
            self._watch_cache()

    async def reconcile_all(self) -> int:
        """Bring every aggregated ClusterRole up to date; the number of writes made."""
        writes = 0
        for _ in range(10):
            changed = False
            roles = list(self.store.cache.objects.values())
            for role in roles:
                if not role.get("aggregationRule"):
                    continue
                wanted = aggregated_rules(role, roles)
                if (role.get("rules") or []) == wanted:
                    continue
                await self._write(role["metadata"]["name"], wanted)
                writes += 1
                changed = True
            if not changed:
                return writes
            await self.server.cache.sync()
        return writes

    async def _write(self, name: str, rules: list[dict]) -> None:
        def transform(current: dict) -> dict:
            current["rules"] = rules
            return current
        try:
            await self.store.patch("", name, transform, WriteOptions())
        except errors.APIError as err:
            if err.code != 404:
                raise
