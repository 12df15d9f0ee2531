"""Layer rule: pyk8s.scheduler imports only pyk8s.api and pyk8s.client; modules stay small."""
from __future__ import annotations

import ast
import pathlib

import pyk8s.scheduler

ROOT = pathlib.Path(pyk8s.scheduler.__file__).parent


def project_imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pyk8s")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.startswith("pyk8s"):
            if node.module == "pyk8s":  # from pyk8s import aio
                found |= {f"pyk8s.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


def test_scheduler_imports_only_api_and_client():
    allowed = ("pyk8s.aio", "pyk8s.api", "pyk8s.client", "pyk8s.scheduler")
    offenders = {}
    for path in ROOT.rglob("*.py"):
        bad = {m for m in project_imports(path) if not any(m == a or m.startswith(a + ".") for a in allowed)}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_modules_are_small_and_documented():
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) < 800, path.name
        assert ast.get_docstring(ast.parse(text)), f"{path.name} has no module docstring"
