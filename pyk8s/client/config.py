"""Where the cluster is and who we are: kubeconfig files and in-cluster config.

Role: turn a kubeconfig (clusters, users, contexts; CA, client certificate and key
as files or inline data; bearer token or token file; basic auth;
insecure-skip-tls-verify; tls-server-name) or a pod's service-account mount into a
``ClientConfig``: the server URL, an ``ssl.SSLContext`` and the auth headers the
transport sends.

Invariants:
- Relative file paths in a kubeconfig are relative to that file's directory, as
  upstream; with several files in ``KUBECONFIG`` the first to define a name or the
  current context wins.
- Inline key material never stays on disk: it is written to a private temp file
  only for the ``load_cert_chain`` call and removed at once.
- A token file is re-read when its mtime changes (bound service-account tokens
  rotate), so ``auth_headers()`` always carries the current token.
- Unsupported credential plugins (``exec``, ``auth-provider``) raise
  ``ConfigError`` instead of silently connecting anonymously.
"""
from __future__ import annotations

import base64
import dataclasses
import os
import ssl
import tempfile
from typing import Any, Mapping

import yaml

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_USER_AGENT = "pyk8s/v1.32.0"


class ConfigError(Exception):
    """The configuration cannot be used to reach a cluster."""


@dataclasses.dataclass
class ClientConfig:
    """Everything a transport needs to talk to one API server as one identity."""

    server: str
    ssl_context: ssl.SSLContext | None = None
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    namespace: str = "default"
    tls_server_name: str | None = None
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 60.0  # per request; watches use their own
    _token_mtime: float = dataclasses.field(default=-1.0, repr=False)

    def auth_headers(self) -> dict[str, str]:
        token = self._current_token()
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.username is not None:
            raw = f"{self.username}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _current_token(self) -> str | None:
        if self.token_file:
            try:
                mtime = os.stat(self.token_file).st_mtime
            except OSError:
                return self.token
            if mtime != self._token_mtime:
                with open(self.token_file) as f:
                    self.token = f.read().strip()
                self._token_mtime = mtime
        return self.token


# --- kubeconfig ------------------------------------------------------------------

def default_kubeconfig_paths(env: Mapping[str, str] = os.environ) -> list[str]:
    if env.get("KUBECONFIG"):
        return [p for p in env["KUBECONFIG"].split(os.pathsep) if p]
    return [os.path.join(os.path.expanduser("~"), ".kube", "config")]


def load_kubeconfig(path: str | list[str] | None = None, *,
                    context: str | None = None) -> ClientConfig:
    """Load the named (or current) context from a kubeconfig file or files."""
    paths = [path] if isinstance(path, str) else (path or default_kubeconfig_paths())
    sections = ("clusters", "users", "contexts")
    merged: dict[str, Any] = {k: [] for k in sections}
    merged["current-context"] = None
    seen: dict[str, set] = {k: set() for k in sections}
    found = False
    for p in paths:
        if not os.path.exists(p):
            continue
        found = True
        with open(p) as f:
            doc = yaml.safe_load(f) or {}
        base = os.path.dirname(os.path.abspath(p))
        for section in sections:
            for entry in doc.get(section) or []:
                if entry.get("name") in seen[section]:
                    continue
                seen[section].add(entry.get("name"))
                merged[section].append(_with_base(entry, base))
        if not merged["current-context"]:
            merged["current-context"] = doc.get("current-context") or None
    if not found:
        raise ConfigError(f"no kubeconfig found at {os.pathsep.join(paths)}")
    return config_from_dict(merged, context=context)


def _with_base(entry: dict, base: str) -> dict:
    entry = dict(entry)
    entry["_base"] = base
    return entry


def config_from_dict(doc: Mapping[str, Any], *, context: str | None = None,
                     base_dir: str | None = None) -> ClientConfig:
    """A ``ClientConfig`` from a parsed kubeconfig document."""
    name = context or doc.get("current-context")
    if not name:
        raise ConfigError("no context chosen and the kubeconfig has no current-context")
    ctx_entry = _named(doc, "contexts", name)
    ctx = ctx_entry.get("context") or {}
    cluster_entry = _named(doc, "clusters", ctx.get("cluster"))
    cluster = cluster_entry.get("cluster") or {}
    user_entry = _named(doc, "users", ctx.get("user")) if ctx.get("user") else {}
    user = user_entry.get("user") or {}
    server = cluster.get("server")
    if not server:
        raise ConfigError(f'cluster "{ctx.get("cluster")}" has no server')
    cluster_base = cluster_entry.get("_base") or base_dir or os.getcwd()
    user_base = user_entry.get("_base") or base_dir or os.getcwd()
    for plugin in ("exec", "auth-provider"):
        if user.get(plugin):
            raise ConfigError(f'user "{ctx.get("user")}": {plugin} credentials are not supported')
    cfg = ClientConfig(server=server.rstrip("/"), namespace=ctx.get("namespace") or "default",
                       tls_server_name=cluster.get("tls-server-name") or None)
    if server.startswith("https://"):
        cfg.ssl_context = _ssl_context(cluster, user, cluster_base=cluster_base,
                                       user_base=user_base)
    cfg.token = user.get("token") or None
    if user.get("tokenFile"):
        cfg.token_file = _path(user["tokenFile"], user_base)
    if user.get("username") is not None:
        cfg.username, cfg.password = user.get("username"), user.get("password")
    return cfg


def _named(doc: Mapping[str, Any], section: str, name: str | None) -> dict:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            return entry
    raise ConfigError(f'{section[:-1]} "{name}" not found in kubeconfig')


def _path(value: str, base: str) -> str:
    value = os.path.expanduser(value)
    return value if os.path.isabs(value) else os.path.join(base, value)


def _material(section: Mapping[str, Any], key: str, base: str) -> bytes | None:
    """``<key>-data`` (base64) wins over ``<key>`` (a file path), as upstream."""
    data = section.get(key + "-data")
    if data:
        try:
            return base64.b64decode(data, validate=True)
        except ValueError as err:
            raise ConfigError(f"{key}-data is not valid base64: {err}") from None
    if section.get(key):
        with open(_path(section[key], base), "rb") as f:
            return f.read()
    return None


# One TLS context per distinct (CA, client certificate, key) in this process: clients
# loaded from the same credentials share it, so when the kubelet's certificate manager
# loads a renewed certificate into it, kube-proxy and DNS running beside the kubelet
# with the node's kubeconfig present the new one too (their next handshake).
_contexts: dict[tuple, ssl.SSLContext] = {}


def _ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any], *,
                 cluster_base: str, user_base: str) -> ssl.SSLContext:
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    ca = None if insecure else _material(cluster, "certificate-authority", cluster_base)
    cert = _material(user, "client-certificate", user_base)
    key = _material(user, "client-key", user_base)
    if bool(cert) != bool(key):
        raise ConfigError("client-certificate and client-key must be given together")
    ident = (insecure, ca, cert, key)
    ctx = _contexts.get(ident)
    if ctx is not None:
        return ctx
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca:
        ctx.load_verify_locations(cadata=ca.decode())
    if cert and key:
        load_cert_chain(ctx, cert=cert, key=key)
    _contexts[ident] = ctx
    return ctx


def load_cert_chain(ctx: ssl.SSLContext, *, cert: bytes, key: bytes) -> None:
    """``ctx.load_cert_chain`` from PEM bytes (the ssl module only reads files)."""
    with tempfile.TemporaryDirectory(prefix="pyk8s-tls-") as d:
        os.chmod(d, 0o700)
        cert_path, key_path = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as err:
            raise ConfigError(f"client certificate and key do not load: {err}") from None
    # A shared context now holds the renewed pair: file it under it, so that clients
    # loaded later from the old credentials get their own context, not the new pair.
    for ident, shared in list(_contexts.items()):
        if shared is ctx:
            del _contexts[ident]
            _contexts[(ident[0], ident[1], cert, key)] = ctx


# --- in-cluster ------------------------------------------------------------------

def load_incluster_config(*, root: str = SERVICE_ACCOUNT_DIR,
                          env: Mapping[str, str] = os.environ) -> ClientConfig:
    """The config of a pod: the ``kubernetes`` Service address and its service account."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST"
                          " and KUBERNETES_SERVICE_PORT must be defined")
    token_file = os.path.join(root, "token")
    if not os.path.exists(token_file):
        raise ConfigError(f"open {token_file}: no such file or directory")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca_file = os.path.join(root, "ca.crt")
    if os.path.exists(ca_file):
        ctx.load_verify_locations(cafile=ca_file)
    namespace = "default"
    ns_file = os.path.join(root, "namespace")
    if os.path.exists(ns_file):
        with open(ns_file) as f:
            namespace = f.read().strip() or "default"
    cfg = ClientConfig(server=f"https://{host}:{port}", ssl_context=ctx,
                       token_file=token_file, namespace=namespace)
    cfg.auth_headers()  # read the token now, so a broken mount fails here
    return cfg


def load_config(path: str | None = None, *, context: str | None = None,
                env: Mapping[str, str] = os.environ) -> ClientConfig:
    """An explicit kubeconfig, else in-cluster config inside a pod, else the default file."""
    if path:
        return load_kubeconfig(path, context=context)
    if env.get("KUBERNETES_SERVICE_HOST") and os.path.exists(
            os.path.join(SERVICE_ACCOUNT_DIR, "token")) and not env.get("KUBECONFIG"):
        return load_incluster_config(env=env)
    return load_kubeconfig(default_kubeconfig_paths(env), context=context)
