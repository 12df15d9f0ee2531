"""Shared cell formatting for the server-side printers, as upstream's helpers do it.

Role: durations (``duration.HumanDuration``/``ShortHumanDuration``), timestamps,
label and selector strings (``labels.FormatLabels``; selectors and quantities through
``pyk8s.api.selectors`` and ``pyk8s.api.quantities``), container layout,
int-or-string and the column-definition record. Pure functions
of their arguments; ``now`` is always passed in, never read from a clock.

Invariants:

- a missing or zero timestamp prints ``<unknown>``, as upstream's
  ``translateTimestampSince``;
- label maps and selector requirements print sorted by key, values of set operators
  sorted, so equal inputs give equal strings;
- every function accepts the object shapes that a defaulted v1 object may omit
  (absent maps and lists are empty).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from pyk8s.api.quantities import QuantityError, canonical
from pyk8s.api.selectors import SelectorError, label_selector_from_dict

from .docs import DOCS

UNKNOWN = "<unknown>"
NONE = "<none>"
UNSET = "<unset>"


@dataclass(frozen=True)
class Column:
    """One ``TableColumnDefinition``; ``priority`` 1 marks an ``-o wide`` column."""

    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


Row = Callable[[dict, datetime], list]


@dataclass(frozen=True)
class Printer:
    """Columns and the row function of one kind; ``conditions`` gives row conditions."""

    columns: tuple[Column, ...]
    row: Row
    conditions: Callable[[dict], list] | None = None


NAME = Column("Name", format="name", description=DOCS["ObjectMeta.name"])
AGE = Column("Age", description=DOCS["ObjectMeta.creationTimestamp"])
CONTAINERS = Column("Containers", priority=1, description="Names of each container in the template.")
IMAGES = Column("Images", priority=1, description="Images referenced by each container in the template.")


def doc(key: str) -> str:
    return DOCS[key]


# -- durations ---------------------------------------------------------------------

def _seconds(d: float | timedelta) -> float:
    return d.total_seconds() if isinstance(d, timedelta) else float(d)


def human_duration(d: float | timedelta) -> str:
    """upstream ``duration.HumanDuration``: ~2-3 significant figures."""
    total = _seconds(d)
    seconds = math.trunc(total)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def short_human_duration(d: float | timedelta) -> str:
    """upstream ``duration.ShortHumanDuration``: one unit, used for CRD date columns."""
    total = _seconds(d)
    seconds = math.trunc(total)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds // 60 < 60:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{math.trunc(total / 3600 / 24 / 365)}y"


# -- timestamps --------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:?\d\d)$"
)


_ZERO_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``metav1.Time`` or ``MicroTime``) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    match = _TIMESTAMP.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    if zone in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    stamp = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                     micros, tzinfo=tz)
    # metav1.Time{}.IsZero(): the zero time means "unset".
    return None if stamp == _ZERO_TIME else stamp


def since(value: Any, now: datetime) -> str:
    """upstream ``translateTimestampSince``."""
    stamp = parse_time(value)
    if stamp is None:
        return UNKNOWN
    return human_duration(now - stamp)


def age(obj: dict, now: datetime) -> str:
    return since(meta(obj).get("creationTimestamp"), now)


# -- object access -----------------------------------------------------------------

def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def name(obj: dict) -> str:
    return meta(obj).get("name", "")


def spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def status(obj: dict) -> dict:
    return obj.get("status") or {}


def dig(obj: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def deleting(obj: dict) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


# -- labels and selectors ----------------------------------------------------------

def format_labels(labels: dict | None) -> str:
    """upstream ``labels.FormatLabels``: ``k=v`` sorted by key, or ``<none>``."""
    text = ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))
    return text or NONE


def selector_string(selector: dict | None) -> str | None:
    """``LabelSelectorAsSelector(sel).String()``; None when the selector is invalid."""
    try:
        return str(label_selector_from_dict(selector))
    except SelectorError:
        return None


def quantity_string(raw: object) -> str:
    """A quantity as upstream's ``Quantity.String()``; an absent one is the zero quantity."""
    if raw is None or raw == "":
        return "0"
    try:
        return canonical(raw)
    except QuantityError:
        # Stored objects were validated; show anything else as it was written.
        return str(raw)


def go_label_selector(selector: dict) -> str:
    """The Go ``(*LabelSelector).String()`` form, which a few printers show verbatim."""
    labels = "".join(f"{k}: {v}," for k, v in sorted((selector.get("matchLabels") or {}).items()))
    exprs = "".join(
        "LabelSelectorRequirement{Key:%s,Operator:%s,Values:[%s],}," % (
            e.get("key", ""), e.get("operator", ""), " ".join(e.get("values") or []))
        for e in selector.get("matchExpressions") or []
    )
    return ("&LabelSelector{MatchLabels:map[string]string{%s},"
            "MatchExpressions:[]LabelSelectorRequirement{%s},}" % (labels, exprs))


# -- misc --------------------------------------------------------------------------

def layout_containers(containers: Iterable[dict] | None) -> tuple[str, str]:
    """upstream ``layoutContainerCells``: names and images, comma-joined."""
    containers = list(containers or [])
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def int_or_string(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def bool_ptr(value: Any) -> str:
    """upstream ``printBoolPtr``."""
    if value is None:
        return UNSET
    return "True" if value else "False"


def list_with_more(items: list[str], count: int, limit: int = 3) -> str:
    """upstream ``listWithMoreString``: first ``limit`` items, then ``+ N more...``."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or UNSET
