"""Shared plugin helpers: tolerations, node selectors, score normalization.

Role: upstream's ``v1helper`` taint/toleration functions, ``component-helpers``'
``nodeaffinity`` package (RequiredNodeAffinity, PreferredSchedulingTerms) and
``plugins/helper.DefaultNormalizeScore``.

Invariants:
- A node selector term that fails to parse matches nothing (upstream ignores the
  parse error for backwards compatibility and reports no match); an empty term
  (no expressions, no fields) is skipped; a NodeSelector whose terms are all skipped
  matches no node.
- ``matchFields`` supports only ``metadata.name``, with In/NotIn, as upstream.
"""
from __future__ import annotations

from typing import Callable, Iterable

from pyk8s.scheduler.framework import NodeScore

TAINT_NODE_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_TOPOLOGY_ZONE = "topology.kubernetes.io/zone"
LABEL_TOPOLOGY_REGION = "topology.kubernetes.io/region"
LABEL_FAILURE_DOMAIN_ZONE = "failure-domain.beta.kubernetes.io/zone"
LABEL_FAILURE_DOMAIN_REGION = "failure-domain.beta.kubernetes.io/region"


# --- taints and tolerations ---------------------------------------------------------


def toleration_tolerates_taint(toleration: dict, taint: dict) -> bool:
    """Upstream ``Toleration.ToleratesTaint``."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or ""
    if op in ("", "Equal"):
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return op == "Exists"


def tolerations_tolerate_taint(tolerations: Iterable[dict] | None, taint: dict) -> bool:
    return any(toleration_tolerates_taint(t, taint) for t in tolerations or ())


def do_not_schedule_taint(taint: dict) -> bool:
    return taint.get("effect") in ("NoSchedule", "NoExecute")


def find_matching_untolerated_taint(taints: Iterable[dict] | None, tolerations: Iterable[dict] | None,
                                    include: Callable[[dict], bool] = do_not_schedule_taint) -> dict | None:
    """The first taint selected by ``include`` that no toleration tolerates."""
    tolerations = list(tolerations or ())
    for taint in taints or ():
        if include(taint) and not tolerations_tolerate_taint(tolerations, taint):
            return taint
    return None


# --- node selectors --------------------------------------------------------------------


class _ParseError(ValueError):
    pass


def _int64(s: str) -> int | None:
    try:
        n = int(s, 10)
    except (TypeError, ValueError):
        return None
    return n if -(1 << 63) <= n < (1 << 63) else None


def _requirement(expr: dict, allow: tuple[str, ...]) -> Callable[[dict], bool]:
    key = expr.get("key") or ""
    op = expr.get("operator") or ""
    values = list(expr.get("values") or ())
    if op not in allow:
        raise _ParseError(f"{op!r} is not a valid node selector operator")
    if op in ("In", "NotIn"):
        if not values:
            raise _ParseError("values set can't be empty")
        vals = frozenset(values)
        if op == "In":
            return lambda labels: key in labels and labels[key] in vals
        return lambda labels: key not in labels or labels[key] not in vals
    if op == "Exists":
        return lambda labels: key in labels
    if op == "DoesNotExist":
        return lambda labels: key not in labels
    if len(values) != 1 or _int64(values[0]) is None:
        raise _ParseError("for 'Gt', 'Lt' operators, exactly one integer value is required")
    want = _int64(values[0])

    def compare(labels: dict) -> bool:
        have = _int64(labels.get(key)) if key in labels else None
        if have is None:
            return False
        return have > want if op == "Gt" else have < want  # type: ignore[operator]
    return compare


_LABEL_OPS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
_FIELD_OPS = ("In", "NotIn")


def is_empty_term(term: dict) -> bool:
    return not term.get("matchExpressions") and not term.get("matchFields")


class NodeSelectorTerm:
    """One NodeSelectorTerm: its expressions and fields are ANDed."""

    __slots__ = ("_labels", "_fields", "valid")

    def __init__(self, term: dict):
        self.valid = True
        try:
            self._labels = [_requirement(e, _LABEL_OPS) for e in term.get("matchExpressions") or ()]
            self._fields = []
            for f in term.get("matchFields") or ():
                if f.get("key") != "metadata.name":
                    raise _ParseError(f"unsupported field key {f.get('key')!r}")
                if len(f.get("values") or ()) != 1:
                    raise _ParseError("must have one element")
                self._fields.append(_requirement(f, _FIELD_OPS))
        except _ParseError:
            self.valid = False
            self._labels, self._fields = [], []

    def matches(self, labels: dict, name: str) -> bool:
        if not self.valid:
            return False
        if not all(r(labels) for r in self._labels):
            return False
        fields = {"metadata.name": name}
        return all(r(fields) for r in self._fields)


class NodeSelector:
    """A NodeSelector: terms ORed; matches nothing when no usable term is left."""

    __slots__ = ("terms",)

    def __init__(self, selector: dict):
        self.terms = [NodeSelectorTerm(t) for t in selector.get("nodeSelectorTerms") or () if not is_empty_term(t)]

    def matches(self, labels: dict, name: str) -> bool:
        return any(t.matches(labels, name) for t in self.terms)


def node_labels_and_name(node: dict) -> tuple[dict, str]:
    meta = node.get("metadata") or {}
    return meta.get("labels") or {}, meta.get("name") or ""


class RequiredNodeAffinity:
    """``spec.nodeSelector`` AND the required node affinity (upstream
    ``nodeaffinity.GetRequiredNodeAffinity``)."""

    __slots__ = ("_node_selector", "_affinity")

    def __init__(self, pod: dict):
        spec = pod.get("spec") or {}
        self._node_selector = dict(spec.get("nodeSelector") or {})
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution"))
        self._affinity = NodeSelector(required) if required is not None else None

    def is_trivial(self) -> bool:
        return not self._node_selector and self._affinity is None

    def matches(self, node: dict) -> bool:
        labels, name = node_labels_and_name(node)
        for k, v in self._node_selector.items():
            if labels.get(k) != v:
                return False
        return self._affinity is None or self._affinity.matches(labels, name)


class PreferredSchedulingTerms:
    """Weighted preferences; ``score`` sums weights of matching terms."""

    __slots__ = ("_terms",)

    def __init__(self, terms: Iterable[dict] | None):
        self._terms = [(int(t.get("weight") or 0), NodeSelectorTerm(t.get("preference") or {}))
                       for t in terms or ()
                       if int(t.get("weight") or 0) != 0 and not is_empty_term(t.get("preference") or {})]

    def __bool__(self) -> bool:
        return bool(self._terms)

    def score(self, node: dict) -> int:
        labels, name = node_labels_and_name(node)
        return sum(w for w, term in self._terms if term.matches(labels, name))


# --- scores ----------------------------------------------------------------------------


def default_normalize_score(max_priority: int, reverse: bool, scores: list[NodeScore]) -> None:
    """Scale scores to [0, max_priority] by the maximum; ``reverse`` flips them."""
    max_count = max((s.score for s in scores), default=0)
    if max_count == 0:
        if reverse:
            for s in scores:
                s.score = max_priority
        return
    for s in scores:
        score = max_priority * s.score // max_count
        s.score = max_priority - score if reverse else score


def default_normalize_values(max_priority: int, reverse: bool, values: list[int]) -> list[int]:
    """``default_normalize_score`` on plain values, returning the new list."""
    max_count = max(values, default=0)
    if max_count == 0:
        return [max_priority] * len(values) if reverse else list(values)
    if reverse:
        return [max_priority - max_priority * v // max_count for v in values]
    return [max_priority * v // max_count for v in values]


def go_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's ``/`` on int64."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def zone_key(node: dict) -> str:
    """Upstream ``utilnode.GetZoneKey``: region and zone, empty when neither set."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    zone = labels.get(LABEL_TOPOLOGY_ZONE) or labels.get(LABEL_FAILURE_DOMAIN_ZONE) or ""
    region = labels.get(LABEL_TOPOLOGY_REGION) or labels.get(LABEL_FAILURE_DOMAIN_REGION) or ""
    if not zone and not region:
        return ""
    return f"{region}:\x00:{zone}"

