"""Layer rule: pyk8s.client imports only pyk8s.api (and the pyk8s.aio helpers) among the
project's packages."""
from __future__ import annotations

import ast
import pathlib

import pyk8s.client

CLIENT = pathlib.Path(pyk8s.client.__file__).parent


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
            found.add("..")  # relative imports leaving the package
    return found


def test_client_imports_only_the_api_package():
    offenders = {}
    for path in CLIENT.glob("*.py"):
        bad = {m for m in project_imports(path)
               if not (m in ("pyk8s.api", "pyk8s.aio") or m.startswith("pyk8s.api.")
                       or m.startswith("pyk8s.client"))}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_client_modules_stay_small_and_documented():
    for path in CLIENT.glob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) < 800, path.name
        assert ast.get_docstring(ast.parse(text)), f"{path.name} has no module docstring"
