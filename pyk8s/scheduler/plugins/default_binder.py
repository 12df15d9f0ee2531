"""DefaultBinder: bind through the API (``POST pods/{name}/binding``).

Role: upstream ``plugins/defaultbinder``; the request goes through the handle's
``ClusterActions`` seam.
"""
from __future__ import annotations

from typing import Any

from pyk8s.scheduler.framework import Status

NAME = "DefaultBinder"


class DefaultBinder:
    name = NAME

    def __init__(self, handle: Any):
        self.handle = handle

    async def bind(self, state: Any, pod: dict, node_name: str) -> Status | None:
        try:
            await self.handle.actions.bind(pod, node_name)
        except Exception as e:  # noqa: BLE001 - every failure becomes an Error status
            return Status.as_status(e)
        return None


def new(args: dict, handle: Any) -> DefaultBinder:
    return DefaultBinder(handle)
