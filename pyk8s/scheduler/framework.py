"""The scheduling framework's vocabulary: statuses, cycle state, extension points.

Role: upstream's ``pkg/scheduler/framework/{interface,cycle_state,types}.go``. Plugins
are objects with a ``name`` and any of the extension-point methods below; the
runtime finds them by method (as Go finds them by interface). A plugin module plus
one line in ``plugins.registry`` adds a policy; the scheduling loop never changes.

Invariants:
- A plugin returns ``None`` for success (Go's nil status); any other result is a
  ``Status``. ``Status.is_rejected()`` is Unschedulable, UnschedulableAndUnresolvable
  or Pending; Filter plugins return nothing else but Success or Error.
- ``CycleState`` lives for one scheduling cycle of one pod; ``clone()`` copies every
  value that defines ``clone()`` (preemption dry-runs mutate clones only).
- ``FitError`` formats upstream's FailedScheduling message exactly:
  ``0/N nodes are available: <prefilter msg>. | <sorted "count reason", ...>.``
  followed by `` <postfilter msg>`` when PostFilter ran.
- Scores handed to the runtime after NormalizeScore lie in [0, 100].
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0
MAX_TOTAL_SCORE = (1 << 63) - 1


class Code(enum.IntEnum):
    """Upstream's status codes, with their String() names."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5
    PENDING = 6

    def __str__(self) -> str:
        return _CODE_NAMES[self]


_CODE_NAMES = {Code.SUCCESS: "Success", Code.ERROR: "Error",
               Code.UNSCHEDULABLE: "Unschedulable",
               Code.UNSCHEDULABLE_AND_UNRESOLVABLE: "UnschedulableAndUnresolvable",
               Code.WAIT: "Wait", Code.SKIP: "Skip", Code.PENDING: "Pending"}
_REJECTED = frozenset({Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, Code.PENDING})


class SchedulingError(Exception):
    """An Error status turned into an exception (``Status.as_error``)."""


class Status:
    """The result of a plugin call: a code, human reasons, the plugin that said it."""

    __slots__ = ("code", "reasons", "plugin", "error")

    def __init__(self, code: Code = Code.SUCCESS, *reasons: str, plugin: str = "",
                 error: BaseException | None = None):
        self.code = code
        self.reasons = list(reasons)
        self.plugin = plugin
        self.error = error

    @classmethod
    def as_status(cls, err: BaseException) -> "Status":
        """An Error status carrying ``err`` (upstream ``AsStatus``)."""
        return cls(Code.ERROR, str(err), error=err)

    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    def is_rejected(self) -> bool:
        return self.code in _REJECTED

    def is_skip(self) -> bool:
        return self.code == Code.SKIP

    def is_wait(self) -> bool:
        return self.code == Code.WAIT

    def message(self) -> str:
        return ", ".join(self.reasons)

    def with_plugin(self, plugin: str) -> "Status":
        self.plugin = plugin
        return self

    def with_error(self, err: BaseException) -> "Status":
        """Attach an error; its text becomes the only reason (upstream ``WithError``)."""
        self.error = err
        self.reasons = [str(err)]
        return self

    def as_error(self) -> BaseException | None:
        if self.is_success():
            return None
        return self.error or SchedulingError(self.message())

    def __repr__(self) -> str:
        return f"Status({self.code}, {self.reasons!r}, plugin={self.plugin!r})"


def code_of(status: Status | None) -> Code:
    """The code of a possibly-nil status (nil is Success)."""
    return Code.SUCCESS if status is None else status.code


def is_success(status: Status | None) -> bool:
    return status is None or status.code == Code.SUCCESS


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, *reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons)


SKIP = Code.SKIP  # plugins build Status(SKIP) fresh: statuses are mutable


# --- cycle state ---------------------------------------------------------------


class CycleState:
    """Per-cycle scratch space shared by the plugins of one profile for one pod."""

    __slots__ = ("_data", "skip_filter_plugins", "skip_score_plugins")

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.skip_filter_plugins: set[str] = set()
        self.skip_score_plugins: set[str] = set()

    def read(self, key: str) -> Any:
        """The value under ``key``; ``KeyError`` when PreFilter/PreScore did not run."""
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def clone(self) -> "CycleState":
        out = CycleState()
        for key, value in self._data.items():
            copier = getattr(value, "clone", None)
            out._data[key] = copier() if copier is not None else value
        out.skip_filter_plugins = set(self.skip_filter_plugins)
        out.skip_score_plugins = set(self.skip_score_plugins)
        return out


# --- cluster events ------------------------------------------------------------


class ActionType(enum.IntFlag):
    """What changed about a resource (upstream ``framework.ActionType``)."""

    ADD = 1 << 0
    DELETE = 1 << 1
    UPDATE_NODE_ALLOCATABLE = 1 << 2
    UPDATE_NODE_LABEL = 1 << 3
    UPDATE_NODE_TAINT = 1 << 4
    UPDATE_NODE_CONDITION = 1 << 5
    UPDATE_NODE_ANNOTATION = 1 << 6
    UPDATE_POD_LABEL = 1 << 7
    UPDATE_POD_SCALE_DOWN = 1 << 8
    UPDATE_POD_TOLERATION = 1 << 9
    UPDATE_POD_SCHEDULING_GATES_ELIMINATED = 1 << 10
    UPDATE_POD_OTHER = 1 << 11
    UPDATE = ((1 << 12) - 1) & ~3
    ALL = (1 << 12) - 1


# Event resources, as upstream's GVK shorthands.
POD = "Pod"
ASSIGNED_POD = "AssignedPod"
UNSCHEDULABLE_POD = "UnschedulablePod"
NODE = "Node"
PERSISTENT_VOLUME = "PersistentVolume"
PERSISTENT_VOLUME_CLAIM = "PersistentVolumeClaim"
STORAGE_CLASS = "storage.k8s.io/StorageClass"
CSI_NODE = "storage.k8s.io/CSINode"
NAMESPACE = "Namespace"
SERVICE = "Service"
WILDCARD = "*"


@dataclass(frozen=True)
class ClusterEvent:
    """A change to one kind of object that may make rejected pods schedulable."""

    resource: str
    action: ActionType
    label: str = ""

    def is_wildcard(self) -> bool:
        return self.resource == WILDCARD and self.action == ActionType.ALL

    def matches(self, incoming: "ClusterEvent") -> bool:
        """True when ``incoming`` is this registered event or a more specific one."""
        if self.is_wildcard():
            return True
        resource_ok = (self.resource == WILDCARD or self.resource == incoming.resource
                       or (self.resource == POD and incoming.resource in (ASSIGNED_POD, UNSCHEDULABLE_POD)))
        return resource_ok and bool(self.action & incoming.action)

    def __str__(self) -> str:
        return self.label or f"{self.resource}{_action_label(self.action)}"


def _action_label(action: ActionType) -> str:
    """Upstream's ActionType.String() for the values it names."""
    if action == ActionType.ALL:
        return "All"
    if action == ActionType.UPDATE:
        return "Update"
    if action.value.bit_count() == 1 and action.name:
        return "".join(part.title() for part in action.name.split("_"))
    return "Update" if not action & (ActionType.ADD | ActionType.DELETE) else str(int(action))


class QueueingHint(enum.IntEnum):
    QUEUE_SKIP = 0
    QUEUE = 1


QueueingHintFn = Callable[[dict, Any, Any], QueueingHint]


@dataclass(frozen=True)
class ClusterEventWithHint:
    """A registered event and an optional hint deciding whether it helps a pod."""

    event: ClusterEvent
    hint: QueueingHintFn | None = None


EVENT_UNSCHEDULABLE_TIMEOUT = ClusterEvent(WILDCARD, ActionType.ALL, "UnschedulableTimeout")
EVENT_FORCE_ACTIVATE = ClusterEvent(WILDCARD, ActionType.ALL, "ForceActivate")
EVENT_ASSIGNED_POD_ADD = ClusterEvent(ASSIGNED_POD, ActionType.ADD)
EVENT_ASSIGNED_POD_DELETE = ClusterEvent(ASSIGNED_POD, ActionType.DELETE)
EVENT_NODE_ADD = ClusterEvent(NODE, ActionType.ADD)


# --- results -------------------------------------------------------------------


@dataclass
class PreFilterResult:
    """Nodes a PreFilter plugin narrowed the search to; ``None`` means all nodes."""

    node_names: set[str] | None = None

    def all_nodes(self) -> bool:
        return self.node_names is None

    def merge(self, other: "PreFilterResult | None") -> "PreFilterResult":
        if other is None or other.all_nodes():
            return self
        if self.all_nodes():
            return PreFilterResult(set(other.node_names or ()))
        return PreFilterResult(self.node_names & other.node_names)  # type: ignore[operator]


MODE_NOOP = 0
MODE_OVERRIDE = 1


@dataclass
class NominatingInfo:
    """How the failure handler should set ``status.nominatedNodeName``."""

    nominated_node_name: str = ""
    mode: int = MODE_NOOP


@dataclass
class PostFilterResult:
    nominating_info: NominatingInfo | None = None


def nominate(node_name: str) -> PostFilterResult:
    return PostFilterResult(NominatingInfo(node_name, MODE_OVERRIDE))


CLEAR_NOMINATED_NODE = NominatingInfo("", MODE_OVERRIDE)


class NodeScore:
    """One node's score from one plugin (mutable: NormalizeScore rewrites it)."""

    __slots__ = ("name", "score")

    def __init__(self, name: str, score: int):
        self.name = name
        self.score = score

    def __repr__(self) -> str:
        return f"NodeScore({self.name!r}, {self.score})"


@dataclass
class NodePluginScores:
    name: str
    scores: list[tuple[str, int]] = field(default_factory=list)
    total_score: int = 0


# --- diagnosis and the FailedScheduling message ------------------------------------


class NodeToStatus:
    """Statuses of nodes rejected in PreFilter/Filter, plus one for absent nodes."""

    __slots__ = ("_map", "absent_nodes_status")

    def __init__(self, absent: Status | None = None):
        self._map: dict[str, Status] = {}
        self.absent_nodes_status = absent or Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def get(self, name: str) -> Status:
        return self._map.get(name, self.absent_nodes_status)

    def set(self, name: str, status: Status) -> None:
        self._map[name] = status

    def __len__(self) -> int:
        return len(self._map)

    def items(self) -> Iterable[tuple[str, Status]]:
        return self._map.items()

    def nodes_for_status_code(self, node_infos: Iterable[Any], code: Code) -> list[Any]:
        """Node infos whose status (explicit or absent) has ``code``."""
        out = []
        absent_matches = self.absent_nodes_status.code == code
        for ni in node_infos:
            status = self._map.get(ni.name)
            if (status is None and absent_matches) or (status is not None and status.code == code):
                out.append(ni)
        return out


@dataclass
class Diagnosis:
    node_to_status: NodeToStatus = field(default_factory=NodeToStatus)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pending_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""

    def add_plugin_status(self, status: Status) -> None:
        if not status.plugin:
            return
        if status.is_rejected():
            self.unschedulable_plugins.add(status.plugin)
        if status.code == Code.PENDING:
            self.pending_plugins.add(status.plugin)


NO_NODE_AVAILABLE_MSG = "0/{} nodes are available"


class FitError(Exception):
    """No node fits the pod; ``str()`` is upstream's FailedScheduling message."""

    def __init__(self, pod: dict, num_all_nodes: int, diagnosis: Diagnosis):
        super().__init__()
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        d = self.diagnosis
        msg = NO_NODE_AVAILABLE_MSG.format(self.num_all_nodes) + ":"
        if d.pre_filter_msg:
            msg += f" {d.pre_filter_msg}."
        else:
            # A PreFilter rejection gives every node the same status: counting the
            # map again would repeat the PreFilter message once per node.
            reasons: dict[str, int] = {}
            for _, status in d.node_to_status.items():
                for reason in status.reasons:
                    reasons[reason] = reasons.get(reason, 0) + 1
            absent = self.num_all_nodes - len(d.node_to_status)
            if absent > 0:
                for reason in d.node_to_status.absent_nodes_status.reasons:
                    reasons[reason] = reasons.get(reason, 0) + absent
            histogram = sorted(f"{count} {reason}" for reason, count in reasons.items())
            if histogram:
                msg += " " + ", ".join(histogram) + "."
        if d.post_filter_msg:
            msg += " " + d.post_filter_msg
        return msg


class NoNodesAvailable(Exception):
    """The cluster has no nodes at all (upstream ``ErrNoNodesAvailable``)."""

    def __str__(self) -> str:
        return "no nodes available to schedule pods"


# --- plugin protocols (documentation of the contract; dispatch is by method) --------


class Plugin(Protocol):
    """Every plugin has a unique ``name`` (the registry key, as upstream)."""

    name: str


class QueueSortPlugin(Plugin, Protocol):
    def less(self, a: Any, b: Any) -> bool:
        """True when queued pod ``a`` must be scheduled before ``b``."""


class PreEnqueuePlugin(Plugin, Protocol):
    def pre_enqueue(self, pod: dict) -> Status | None:
        """Gate a pod before it enters activeQ; a rejection parks it unschedulable."""


class EnqueueExtensions(Plugin, Protocol):
    def events_to_register(self) -> list[ClusterEventWithHint]:
        """Events that may make a pod this plugin rejected schedulable again."""


class PreFilterExtensions(Protocol):
    def add_pod(self, state: CycleState, pod: dict, pod_info_to_add: Any, node_info: Any) -> Status | None:
        """Update PreFilter state as if ``pod_info_to_add`` ran on ``node_info``."""

    def remove_pod(self, state: CycleState, pod: dict, pod_info_to_remove: Any, node_info: Any) -> Status | None:
        """Update PreFilter state as if ``pod_info_to_remove`` left ``node_info``."""


class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, pod: dict) -> tuple[PreFilterResult | None, Status | None]:
        """Compute per-pod state once; Skip disables this plugin's Filter for the cycle."""

    def pre_filter_extensions(self) -> PreFilterExtensions | None: ...


class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: dict, node_info: Any) -> Status | None:
        """Success, or a rejection with reasons; must not mutate ``node_info``."""


class PostFilterPlugin(Plugin, Protocol):
    async def post_filter(self, state: CycleState, pod: dict,
                          statuses: NodeToStatus) -> tuple[PostFilterResult | None, Status]:
        """Run after no node fit (preemption); may act on the cluster."""


class PreScorePlugin(Plugin, Protocol):
    def pre_score(self, state: CycleState, pod: dict, nodes: list) -> Status | None:
        """Compute per-pod scoring state; Skip disables this plugin's Score."""


class ScoreExtensions(Protocol):
    def normalize_score(self, state: CycleState, pod: dict, scores: list[NodeScore]) -> Status | None:
        """Rewrite ``scores`` in place into [0, 100]."""


class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: dict, node_info: Any) -> tuple[int, Status | None]: ...

    def score_extensions(self) -> ScoreExtensions | None: ...


class ReservePlugin(Plugin, Protocol):
    def reserve(self, state: CycleState, pod: dict, node_name: str) -> Status | None: ...

    def unreserve(self, state: CycleState, pod: dict, node_name: str) -> None:
        """Undo ``reserve``; idempotent, called in reverse order on any later failure."""


class PermitPlugin(Plugin, Protocol):
    def permit(self, state: CycleState, pod: dict, node_name: str) -> tuple[Status | None, float]:
        """Success, a rejection, or Wait with a timeout in seconds."""


class PreBindPlugin(Plugin, Protocol):
    async def pre_bind(self, state: CycleState, pod: dict, node_name: str) -> Status | None: ...


class BindPlugin(Plugin, Protocol):
    async def bind(self, state: CycleState, pod: dict, node_name: str) -> Status | None:
        """Bind, or Skip to let the next binder try."""


class PostBindPlugin(Plugin, Protocol):
    def post_bind(self, state: CycleState, pod: dict, node_name: str) -> None: ...
