"""Layer rule: pyk8s.proxy imports only pyk8s.api and pyk8s.client; modules stay small."""
from __future__ import annotations

import ast
import pathlib

import pyk8s.proxy

PACKAGE = pathlib.Path(pyk8s.proxy.__file__).parent


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
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            found.add("..")
    return found


def test_proxy_imports_only_api_and_client():
    allowed = ("pyk8s.aio", "pyk8s.api", "pyk8s.client", "pyk8s.proxy")
    offenders = {p.name: sorted(m for m in project_imports(p)
                                if not any(m == a or m.startswith(a + ".") for a in allowed))
                 for p in PACKAGE.glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_proxy_modules_are_small_and_documented():
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) < 800, path.name
        assert ast.get_docstring(ast.parse(text)), f"{path.name} has no module docstring"
