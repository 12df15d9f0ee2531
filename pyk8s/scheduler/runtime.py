"""One profile's framework: builds its plugins and runs the extension points.

Role: upstream's ``framework/runtime/framework.go``. A ``Framework`` instantiates the
plugins its ``Profile`` enables (through the registry), expands ``multiPoint`` into
each extension point in upstream's order, and runs each point with upstream's
rules (which codes stop a loop, which become Errors, how scores are weighted). It is
also the ``Handle`` plugins receive: snapshot, listers, actions, nominated pods,
waiting pods, clock.

Invariants:
- Filter plugins run in profile order and stop at the first rejection; the
  rejecting plugin's name is recorded on the status. ``cycle_filters`` builds that
  list once per cycle (PreFilter-skipped plugins dropped; a plugin's optional
  ``compile_filter(state, pod)`` hoists per-pod work and must decide exactly as
  its ``filter``, returning None only when ``filter`` would pass every node).
- A score plugin's optional ``score_nodes``/``normalize_values`` compute exactly
  what ``score``/``normalize_score`` would, for all nodes in one call.
- A PreFilter/PreScore Skip removes that plugin's Filter/Score for this cycle only.
- Final scores are ``sum(weight * normalized score)``; a normalized score outside
  [0, 100] is an Error, as upstream.
- Nominated pods with priority >= the pod's are treated as running on their node
  in a first Filter pass; a second pass without them runs only if the first passed.
- ``snapshot`` is shared and replaced in place by the scheduler before each cycle;
  plugins read it only inside a cycle.
"""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, Callable

from pyk8s.client.clock import REAL_CLOCK, Clock

from .configuration import EXTENSION_POINTS, MULTI_POINT, ConfigurationError, Profile
from .framework import (MAX_NODE_SCORE, MIN_NODE_SCORE, ActionType, ClusterEvent, ClusterEventWithHint, Code,
                        CycleState, NodePluginScores, NodeScore, NodeToStatus, PostFilterResult, PreFilterResult,
                        Status, WILDCARD, is_success)
from .nodeinfo import NodeInfo, PodInfo, pod_priority

# The method that marks a plugin as implementing each extension point.
METHODS = {"preEnqueue": "pre_enqueue", "queueSort": "less", "preFilter": "pre_filter", "filter": "filter",
           "postFilter": "post_filter", "preScore": "pre_score", "score": "score", "reserve": "reserve",
           "permit": "permit", "preBind": "pre_bind", "bind": "bind", "postBind": "post_bind"}
MAX_PERMIT_TIMEOUT = 15 * 60.0
_REJECTING_POINTS = ("preEnqueue", "preFilter", "filter", "reserve", "permit")
WILDCARD_EVENT = ClusterEventWithHint(ClusterEvent(WILDCARD, ActionType.ALL))

PluginFactory = Callable[[dict, "Framework"], Any]


class WaitingPod:
    """A pod some Permit plugins asked to wait; resolved by allow/reject/timeout."""

    def __init__(self, pod: dict, plugin_timeouts: dict[str, float], clock: Clock):
        self.pod = pod
        self.pending = set(plugin_timeouts)
        self._future: asyncio.Future | None = None
        self._result: Status | None = None
        self._timers = [clock.call_later(t, self._timeout_cb(name, t)) for name, t in plugin_timeouts.items()]

    def _timeout_cb(self, plugin: str, timeout: float) -> Callable[[], None]:
        return lambda: self.reject(plugin, f"rejected due to timeout after waiting {timeout:g}s at plugin {plugin}")

    def _finish(self, status: Status) -> None:
        if self._result is not None:
            return
        self._result = status
        for t in self._timers:
            t.cancel()
        if self._future is not None and not self._future.done():
            self._future.set_result(status)

    def allow(self, plugin: str) -> None:
        self.pending.discard(plugin)
        if not self.pending:
            self._finish(Status())

    def reject(self, plugin: str, message: str) -> None:
        self._finish(Status(Code.UNSCHEDULABLE, message, plugin=plugin))

    async def wait(self) -> Status:
        if self._result is not None:
            return self._result
        self._future = asyncio.get_running_loop().create_future()
        return await self._future


class Framework:
    """The plugins of one profile and the rules for running them."""

    def __init__(self, profile: Profile, registry: dict[str, PluginFactory], *, snapshot: Any,
                 listers: Any, actions: Any, nominator: Any = None, clock: Clock = REAL_CLOCK):
        self.profile = profile
        self.profile_name = profile.scheduler_name
        self.snapshot = snapshot
        self.listers = listers
        self.actions = actions
        self.nominator = nominator
        self.clock = clock
        self.waiting_pods: dict[str, WaitingPod] = {}
        self.plugins: dict[str, Any] = {}
        for name in self._needed(profile):
            factory = registry.get(name)
            if factory is None:
                raise ConfigurationError(f"{profile.scheduler_name}: plugin {name!r} does not exist")
            self.plugins[name] = factory(dict(profile.plugin_config.get(name) or {}), self)
        self.points: dict[str, list[Any]] = {p: self._expand(p) for p in EXTENSION_POINTS}
        if len(self.points["queueSort"]) != 1:
            raise ConfigurationError(f"{profile.scheduler_name}: exactly one queueSort plugin is required")
        if not self.points["bind"]:
            raise ConfigurationError(f"{profile.scheduler_name}: at least one bind plugin is required")
        self.score_weights = self._weights(profile)
        self.events: dict[str, list[ClusterEventWithHint]] = self._events()

    # -- construction -------------------------------------------------------------

    @staticmethod
    def _needed(profile: Profile) -> list[str]:
        names: list[str] = []
        for point in (MULTI_POINT, *EXTENSION_POINTS):
            for name, _ in profile.plugin_set(point).enabled:
                if name not in names:
                    names.append(name)
        return names

    def _expand(self, point: str) -> list[Any]:
        """Upstream ``expandMultiPointPlugins`` for one extension point."""
        method = METHODS[point]
        specific = self.profile.plugin_set(point)
        specific_names = [n for n, _ in specific.enabled]
        for name in specific_names:
            if not callable(getattr(self.plugins[name], method, None)):
                raise ConfigurationError(f"plugin {name!r} does not extend {point} plugin")
        if "*" in specific.disabled:
            return [self.plugins[n] for n in specific_names]
        disabled = set(specific.disabled)
        overrides: list[str] = []
        multi: list[str] = []
        for name, _ in self.profile.plugin_set(MULTI_POINT).enabled:
            if not callable(getattr(self.plugins[name], method, None)) or name in disabled:
                continue
            if name in specific_names:
                overrides.append(name)
                continue
            if name in multi:
                raise ConfigurationError(f"plugin {name!r} already registered as {point}")
            multi.append(name)
        rest = [n for n in specific_names if n not in overrides]
        return [self.plugins[n] for n in overrides + multi + rest]

    def _weights(self, profile: Profile) -> dict[str, int]:
        weights: dict[str, int] = {}
        for name, weight in profile.plugin_set(MULTI_POINT).enabled:
            weights[name] = weight or 1
        for name, weight in profile.plugin_set("score").enabled:
            weights[name] = weight or weights.get(name, 1)
        return {pl.name: weights.get(pl.name, 1) for pl in self.points["score"]}

    def _events(self) -> dict[str, list[ClusterEventWithHint]]:
        events: dict[str, list[ClusterEventWithHint]] = {}
        for point in _REJECTING_POINTS:
            for pl in self.points[point]:
                if pl.name in events:
                    continue
                register = getattr(pl, "events_to_register", None)
                events[pl.name] = list(register()) if callable(register) else [WILDCARD_EVENT]
        return events

    # -- handle -----------------------------------------------------------------------

    def nominated_pods_for_node(self, node_name: str) -> list[PodInfo]:
        return self.nominator.nominated_pods_for_node(node_name) if self.nominator is not None else []

    def get_waiting_pod(self, uid: str) -> WaitingPod | None:
        return self.waiting_pods.get(uid)

    def has_filter_plugins(self) -> bool:
        return bool(self.points["filter"])

    def has_score_plugins(self) -> bool:
        return bool(self.points["score"])

    def has_post_filter_plugins(self) -> bool:
        return bool(self.points["postFilter"])

    @property
    def percentage_of_nodes_to_score(self) -> int | None:
        return self.profile.percentage_of_nodes_to_score

    # -- queueing ---------------------------------------------------------------------

    def less(self, a: Any, b: Any) -> bool:
        return self.points["queueSort"][0].less(a, b)

    def run_pre_enqueue_plugins(self, pod: dict) -> Status | None:
        for pl in self.points["preEnqueue"]:
            status = pl.pre_enqueue(pod)
            if not is_success(status):
                return status.with_plugin(pl.name)  # type: ignore[union-attr]
        return None

    # -- filtering ------------------------------------------------------------------

    def run_pre_filter_plugins(self, state: CycleState, pod: dict
                               ) -> tuple[PreFilterResult | None, Status | None, set[str]]:
        result: PreFilterResult | None = None
        with_nodes: set[str] = set()
        skipped: set[str] = set()
        returned: Status | None = None
        for pl in self.points["preFilter"]:
            r, s = pl.pre_filter(state, pod)
            if s is not None and s.code == Code.SKIP:
                skipped.add(pl.name)
                continue
            if not is_success(s):
                s.plugin = pl.name  # type: ignore[union-attr]
                if s.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:  # type: ignore[union-attr]
                    # Preemption cannot help in this cycle: no need to run the rest.
                    return None, s, set()
                if s.code == Code.UNSCHEDULABLE:  # type: ignore[union-attr]
                    # Preemption may help later in this cycle, which needs every
                    # PreFilter's state.
                    returned = s
                    continue
                return None, Status(Code.ERROR, f"running PreFilter plugin {pl.name!r}: {s.message()}",
                                    plugin=pl.name), set()
            if r is not None and not r.all_nodes():
                with_nodes.add(pl.name)
            result = r if result is None else result.merge(r)
            if result is not None and not result.all_nodes() and not result.node_names:
                # Upstream formats sets.List(pluginsWithNodes), which is sorted (not
                # plugin order): keep sorted to match its message.
                names = sorted(with_nodes)
                msg = (f"node(s) didn't satisfy plugin {names[0]}" if len(names) == 1
                       else f"node(s) didn't satisfy plugin(s) {go_list(names)} simultaneously")
                return result, Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, msg), with_nodes
        state.skip_filter_plugins = skipped
        return result, returned, with_nodes

    def run_pre_filter_extension_add_pod(self, state: CycleState, pod: dict, pod_info: PodInfo,
                                         node_info: NodeInfo) -> Status | None:
        return self._run_extension("add_pod", state, pod, pod_info, node_info)

    def run_pre_filter_extension_remove_pod(self, state: CycleState, pod: dict, pod_info: PodInfo,
                                            node_info: NodeInfo) -> Status | None:
        return self._run_extension("remove_pod", state, pod, pod_info, node_info)

    def _run_extension(self, which: str, state: CycleState, pod: dict, pod_info: PodInfo,
                       node_info: NodeInfo) -> Status | None:
        for pl in self.points["preFilter"]:
            if pl.name in state.skip_filter_plugins:
                continue
            ext = pl.pre_filter_extensions()
            if ext is None:
                continue
            status = getattr(ext, which)(state, pod, pod_info, node_info)
            if not is_success(status):
                return Status(Code.ERROR, f"running {which} on PreFilter plugin {pl.name!r}: "
                                          f"{status.message()}", plugin=pl.name)  # type: ignore[union-attr]
        return None

    def cycle_filters(self, state: CycleState, pod: dict) -> list[tuple[str, Callable[[NodeInfo], Status | None]]]:
        """This cycle's Filter plugins as (name, node_info -> status) pairs, in
        profile order, built once per cycle: PreFilter-skipped plugins left out,
        and a plugin's ``compile_filter(state, pod)`` used when it has one (the
        same decisions as ``filter`` with the per-pod work hoisted; None when the
        filter passes every node for this pod)."""
        skip = state.skip_filter_plugins
        out: list[tuple[str, Callable[[NodeInfo], Status | None]]] = []
        for pl in self.points["filter"]:
            if pl.name in skip:
                continue
            compile_filter = getattr(pl, "compile_filter", None)
            fn = compile_filter(state, pod) if compile_filter is not None else partial(pl.filter, state, pod)
            if fn is not None:
                out.append((pl.name, fn))
        return out

    def has_nominated_pods(self) -> bool:
        """False when no pod is nominated anywhere, so per-node lookups can be skipped."""
        if self.nominator is None:
            return False
        nominated = getattr(self.nominator, "nominated_pods", None)
        return nominated is None or bool(nominated)

    def run_filter_plugins(self, state: CycleState, pod: dict, node_info: NodeInfo) -> Status | None:
        skip = state.skip_filter_plugins
        for pl in self.points["filter"]:
            if pl.name in skip:
                continue
            status = pl.filter(state, pod, node_info)
            if status is not None and status.code != Code.SUCCESS:
                if not status.is_rejected():
                    # Filters may only succeed or reject; anything else is an Error.
                    status = Status(Code.ERROR, f"running {pl.name!r} filter plugin: {status.message()}")
                status.plugin = pl.name
                return status
        return None

    def run_filter_plugins_with_nominated_pods(self, state: CycleState, pod: dict,
                                               node_info: NodeInfo) -> Status | None:
        """Upstream ``RunFilterPluginsWithNominatedPods``: two passes, see module doc."""
        nominated = self.nominated_pods_for_node(node_info.name) if self.nominator is not None else ()
        if not nominated:
            return self.run_filter_plugins(state, pod, node_info)
        added, state_with, info_with = self._add_nominated_pods(state, pod, node_info, nominated)
        if isinstance(added, Status):
            return added
        status = self.run_filter_plugins(state_with, pod, info_with)
        if not added or not is_success(status):
            return status
        return self.run_filter_plugins(state, pod, node_info)

    def _add_nominated_pods(self, state: CycleState, pod: dict, node_info: NodeInfo,
                            nominated: list[PodInfo]) -> tuple[Any, CycleState, NodeInfo]:
        priority = pod_priority(pod)
        uid = (pod.get("metadata") or {}).get("uid")
        chosen = [pi for pi in nominated if pod_priority(pi.pod) >= priority and pi.uid != uid]
        if not chosen:
            return False, state, node_info
        info_out = node_info.snapshot()
        state_out = state.clone()
        for pi in chosen:
            info_out.add_pod_info(pi)
            status = self.run_pre_filter_extension_add_pod(state_out, pod, pi, info_out)
            if not is_success(status):
                return status, state, node_info
        return True, state_out, info_out

    async def run_post_filter_plugins(self, state: CycleState, pod: dict, statuses: NodeToStatus
                                      ) -> tuple[PostFilterResult | None, Status]:
        result: PostFilterResult | None = None
        reasons: list[str] = []
        rejector = ""
        for pl in self.points["postFilter"]:
            r, s = await pl.post_filter(state, pod, statuses)
            if s.is_success():
                return r, s
            if s.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return r, s.with_plugin(pl.name)
            if not s.is_rejected():
                return None, Status(Code.ERROR, s.message(), plugin=pl.name, error=s.error)
            if r is not None and r.nominating_info is not None and r.nominating_info.mode != 0:
                result = r
            reasons += s.reasons
            rejector = rejector or pl.name
        return result, Status(Code.UNSCHEDULABLE, *reasons, plugin=rejector)

    # -- scoring ----------------------------------------------------------------------

    def run_pre_score_plugins(self, state: CycleState, pod: dict, nodes: list[NodeInfo]) -> Status | None:
        skipped: set[str] = set()
        for pl in self.points["preScore"]:
            status = pl.pre_score(state, pod, nodes)
            if status is not None and status.code == Code.SKIP:
                skipped.add(pl.name)
                continue
            if not is_success(status):
                return Status(Code.ERROR, f"running PreScore plugin {pl.name!r}: {status.message()}",
                              plugin=pl.name)  # type: ignore[union-attr]
        state.skip_score_plugins = skipped
        return None

    def run_score_plugins(self, state: CycleState, pod: dict, nodes: list[NodeInfo]
                          ) -> tuple[list[NodePluginScores], Status | None]:
        names, columns, status = self._score_columns(state, pod, nodes)
        if status is not None:
            return [], status
        if not columns:
            return [NodePluginScores(ni.name) for ni in nodes], None
        return [NodePluginScores(ni.name, list(zip(names, row)), sum(row))
                for ni, row in zip(nodes, zip(*columns))], None

    def run_score_plugins_totals(self, state: CycleState, pod: dict, nodes: list[NodeInfo]
                                 ) -> tuple[list[int], Status | None]:
        """``run_score_plugins`` reduced to each node's total score (the scheduling
        loop's need), without the per-plugin breakdown objects."""
        _, columns, status = self._score_columns(state, pod, nodes)
        if status is not None:
            return [], status
        if not columns:
            return [0] * len(nodes), None
        if len(columns) == 1:
            return list(columns[0]), None
        return list(map(sum, zip(*columns))), None

    def _score_columns(self, state: CycleState, pod: dict, nodes: list[NodeInfo]
                       ) -> tuple[list[str], list[list[int]], Status | None]:
        """Score, normalize, weight. A plugin may offer ``score_nodes(state, pod,
        nodes) -> list[int]``, the same scores computed in one call (fewer Python
        calls per node), and ``normalize_values(state, pod, nodes, values) ->
        list[int]``, its NormalizeScore on plain values; otherwise ``score`` runs
        per node and ``normalize_score`` on NodeScore objects."""
        skip = state.skip_score_plugins
        plugins = [pl for pl in self.points["score"] if pl.name not in skip]
        names: list[str] = []
        columns: list[list[int]] = []
        for pl in plugins:
            batch = getattr(pl, "score_nodes", None)
            if batch is not None:
                values = batch(state, pod, nodes)
            else:
                values = []
                score = pl.score
                for ni in nodes:
                    value, status = score(state, pod, ni)
                    if status is not None and status.code != Code.SUCCESS:
                        return [], [], Status(Code.ERROR, f"plugin {pl.name!r} failed with: {status.message()}")
                    values.append(value)
            ext = pl.score_extensions()
            if ext is not None:
                fast = getattr(ext, "normalize_values", None)
                if fast is not None:
                    values = fast(state, pod, nodes, values)
                else:
                    scores = [NodeScore(ni.name, v) for ni, v in zip(nodes, values)]
                    status = ext.normalize_score(state, pod, scores)
                    if not is_success(status):
                        return [], [], Status(Code.ERROR, f"plugin {pl.name!r} failed with: "
                                                          f"{status.message()}")  # type: ignore[union-attr]
                    values = [s.score for s in scores]
            if values and not MIN_NODE_SCORE <= min(values) <= max(values) <= MAX_NODE_SCORE:
                bad = next(v for v in values if not MIN_NODE_SCORE <= v <= MAX_NODE_SCORE)
                return [], [], Status(Code.ERROR, f"plugin {pl.name!r} returns an invalid score {bad}, it should "
                                                  f"in the range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after "
                                                  "normalizing")
            weight = self.score_weights.get(pl.name, 1)
            names.append(pl.name)
            columns.append(values if weight == 1 else [v * weight for v in values])
        return names, columns, None

    # -- reserve, permit, bind ------------------------------------------------------------

    def run_reserve_plugins_reserve(self, state: CycleState, pod: dict, node_name: str) -> Status | None:
        for pl in self.points["reserve"]:
            status = pl.reserve(state, pod, node_name)
            if not is_success(status):
                if status.is_rejected():  # type: ignore[union-attr]
                    return status.with_plugin(pl.name)  # type: ignore[union-attr]
                return Status(Code.ERROR, f"running Reserve plugin {pl.name!r}: {status.message()}",
                              plugin=pl.name)  # type: ignore[union-attr]
        return None

    def run_reserve_plugins_unreserve(self, state: CycleState, pod: dict, node_name: str) -> None:
        for pl in reversed(self.points["reserve"]):
            pl.unreserve(state, pod, node_name)

    def run_permit_plugins(self, state: CycleState, pod: dict, node_name: str) -> Status | None:
        waits: dict[str, float] = {}
        for pl in self.points["permit"]:
            status, timeout = pl.permit(state, pod, node_name)
            if is_success(status):
                continue
            if status.is_rejected():  # type: ignore[union-attr]
                return status.with_plugin(pl.name)  # type: ignore[union-attr]
            if status.is_wait():  # type: ignore[union-attr]
                waits[pl.name] = min(timeout, MAX_PERMIT_TIMEOUT)
                continue
            return Status(Code.ERROR, f"running Permit plugin {pl.name!r}: {status.message()}",
                          plugin=pl.name)  # type: ignore[union-attr]
        if waits:
            uid = (pod.get("metadata") or {}).get("uid") or ""
            self.waiting_pods[uid] = WaitingPod(pod, waits, self.clock)
            name = (pod.get("metadata") or {}).get("name")
            return Status(Code.WAIT, f"one or more plugins asked to wait and no plugin rejected pod \"{name}\"")
        return None

    async def wait_on_permit(self, pod: dict) -> Status | None:
        uid = (pod.get("metadata") or {}).get("uid") or ""
        waiting = self.waiting_pods.get(uid)
        if waiting is None:
            return None
        try:
            status = await waiting.wait()
        finally:
            self.waiting_pods.pop(uid, None)
        return None if status.is_success() else status

    async def run_pre_bind_plugins(self, state: CycleState, pod: dict, node_name: str) -> Status | None:
        for pl in self.points["preBind"]:
            status = await pl.pre_bind(state, pod, node_name)
            if not is_success(status):
                if status.is_rejected():  # type: ignore[union-attr]
                    return status.with_plugin(pl.name)  # type: ignore[union-attr]
                return Status(Code.ERROR, f"running PreBind plugin {pl.name!r}: {status.message()}",
                              plugin=pl.name)  # type: ignore[union-attr]
        return None

    async def run_bind_plugins(self, state: CycleState, pod: dict, node_name: str) -> Status | None:
        status: Status | None = Status(Code.SKIP)
        for pl in self.points["bind"]:
            status = await pl.bind(state, pod, node_name)
            if status is not None and status.code == Code.SKIP:
                continue
            if not is_success(status):
                if status.is_rejected():  # type: ignore[union-attr]
                    return status.with_plugin(pl.name)  # type: ignore[union-attr]
                return Status(Code.ERROR, f"running Bind plugin {pl.name!r}: {status.message()}",
                              plugin=pl.name)  # type: ignore[union-attr]
            return status
        return status

    def run_post_bind_plugins(self, state: CycleState, pod: dict, node_name: str) -> None:
        for pl in self.points["postBind"]:
            pl.post_bind(state, pod, node_name)


def go_list(items: list[str]) -> str:
    """Go's ``%v`` of a string slice: ``[a b c]``."""
    return "[" + " ".join(items) + "]"
