"""The package layers (STYLE.md item 6), checked by walking every module's imports.

cli > {apiserver, controllers, scheduler, kubelet, proxy, dns} > client > api;
the pyk8s.aio helpers (one module, no project imports) sit below them all.
Only the API server side (apiserver, registry) reaches storage; gRPC is used only
by the CRI client and the etcd backend.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "pyk8s"

# package -> packages it may import (besides itself)
ALLOWED = {
    "api": set(),
    "storage": set(),
    "pki": set(),
    "client": {"api"},
    "registry": {"api", "storage"},
    "apiserver": {"api", "storage", "registry", "pki"},
    "controllers": {"api", "client"},
    "scheduler": {"api", "client"},
    "kubelet": {"api", "client", "cri"},
    "cri": {"api"},
    "proxy": {"api", "client"},
    "dns": {"api", "client"},
    "cli": None,  # the top: may import anything
}
GRPC_ALLOWED = {"cri", "storage"}


def imports_of(path: pathlib.Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                rel = path.relative_to(ROOT).parts[:-1]
                base = list(rel[:len(rel) - node.level + 1]) if node.level > 1 else list(rel)
                mod = ".".join(["pyk8s"] + base + ([node.module] if node.module else []))
                found.add(mod)
            elif node.module:
                found.add(node.module)
    return found


def test_layers_are_respected():
    problems = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 2:
            continue
        package = parts[0]
        allowed = ALLOWED.get(package)
        for mod in imports_of(path, package):
            top = mod.split(".")
            if top[0] in ("grpc", "grpc_tools", "aetcd") and package not in GRPC_ALLOWED:
                problems.append(f"{path.relative_to(ROOT)} imports {mod}")
            if top[0] != "pyk8s" or len(top) < 2 or allowed is None:
                continue
            target = top[1]
            if target != package and target not in allowed and target in ALLOWED:
                problems.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not problems, "layer violations:\n" + "\n".join(sorted(problems))


# Packages whose modules are each kept under 800 lines with a module docstring.
SMALL_AND_DOCUMENTED = ("client", "proxy", "scheduler", "dns")


def test_modules_stay_small_and_documented():
    problems = []
    for package in SMALL_AND_DOCUMENTED:
        for path in (ROOT / package).rglob("*.py"):
            if path.name.endswith("_pb2.py") or path.name.endswith("_pb2_grpc.py"):
                continue
            text = path.read_text()
            rel = path.relative_to(ROOT)
            if len(text.splitlines()) >= 800:
                problems.append(f"{rel} has {len(text.splitlines())} lines")
            if not ast.get_docstring(ast.parse(text)):
                problems.append(f"{rel} has no module docstring")
    assert not problems, "\n".join(problems)
