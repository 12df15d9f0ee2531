"""Server-side printers of the built-in kinds, keyed by kind.

Role: the table columns and row cells upstream's ``pkg/printers/internalversion``
gives each built-in kind. ``PRINTERS`` maps a kind to its ``Printer``; kinds without
an entry use the default convertor in ``pyk8s.apiserver.tables``. Pure data and
functions; the modules here import nothing from the rest of pyk8s.

Invariant: every printer's row function returns exactly one cell per column.
"""
from __future__ import annotations

from .cluster import PRINTERS as _CLUSTER
from .common import Column, Printer
from .core import PRINTERS as _CORE
from .workloads import PRINTERS as _WORKLOADS

PRINTERS: dict[str, Printer] = {**_WORKLOADS, **_CORE, **_CLUSTER}

__all__ = ["PRINTERS", "Column", "Printer"]
