"""Identities for the security tests: kubeconfigs for x509 users and bearer tokens,
kubectl as one of them, and polling with a deadline."""
import asyncio
import base64
import os
import shutil
import ssl
import tempfile
import threading
import time
import uuid

import yaml
from aiohttp import web

from pyk8s.pki import KeyPair, issue


def cluster_ca(cluster) -> KeyPair:
    d = os.path.join(cluster.data_dir, "server", "tls")
    with open(os.path.join(d, "server-ca.crt"), "rb") as c, \
            open(os.path.join(d, "server-ca.key"), "rb") as k:
        return KeyPair(c.read(), k.read())


def _write(cluster, user: dict) -> str:
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    path = os.path.join(cluster.data_dir, f"kubeconfig-{uuid.uuid4().hex[:8]}.yaml")
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "c", "cluster": {
               "server": cluster.url,
               "certificate-authority-data": b64(cluster_ca(cluster).cert_pem)}}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
           "current-context": "c"}
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    return path


def cert_kubeconfig(cluster, name: str, groups=(), *, cert_pem: bytes = b"",
                    key_pem: bytes = b"") -> str:
    """A kubeconfig for an x509 user (a fresh certificate from the cluster CA unless
    ``cert_pem``/``key_pem`` are given)."""
    if not cert_pem:
        pair = issue(cluster_ca(cluster), name, orgs=tuple(groups), client=True)
        cert_pem, key_pem = pair.cert_pem, pair.key_pem
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return _write(cluster, {"client-certificate-data": b64(cert_pem),
                            "client-key-data": b64(key_pem)})


def token_kubeconfig(cluster, token: str) -> str:
    return _write(cluster, {"token": token})


def raw(cluster, method: str, path: str, *, token: str = "", body: dict | None = None,
        cert: tuple[str, str] | None = None) -> tuple[int, dict | str]:
    """One HTTPS request without kubectl (which prompts when it has no credentials)."""
    import json
    import ssl
    import urllib.error
    import urllib.request
    ctx = ssl.create_default_context(cadata=cluster_ca(cluster).cert_pem.decode())
    if cert:
        ctx.load_cert_chain(*cert)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(cluster.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def kubectl_as(cluster, kubeconfig: str, *args, check: bool = True, input=None):
    return cluster.kubectl("--kubeconfig", kubeconfig, *args, check=check, input=input)


def wait_for(fn, timeout: float = 10.0, interval: float = 0.1):
    """Poll ``fn`` until it returns a truthy value; return it, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def ensure_default_sa(cluster, ns: str) -> None:
    """The namespace's ``default`` ServiceAccount (made by a controller upstream)."""
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}))


class WebhookServer:
    """An HTTPS server (a certificate from the cluster ``ca``, for 127.0.0.1) on a
    thread of its own, for admission webhooks; a subclass adds its handlers in
    ``add_routes``."""

    def __init__(self, ca: KeyPair):
        self.ca = ca
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._dir = tempfile.mkdtemp(prefix="webhook-")

    def add_routes(self, app: web.Application) -> None:
        """The subclass's handlers."""

    def start(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("webhook server did not start")
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        pair = issue(self.ca, "webhook", server=True, ips=("127.0.0.1",))
        crt, key = os.path.join(self._dir, "tls.crt"), os.path.join(self._dir, "tls.key")
        with open(crt, "wb") as f:
            f.write(pair.cert_pem)
        with open(key, "wb") as f:
            f.write(pair.key_pem)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(crt, key)
        app = web.Application()
        self.add_routes(app)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def down():
            await self._runner.cleanup()
            self._loop.stop()
        asyncio.run_coroutine_threadsafe(down(), self._loop)
        self._thread.join(5)
        shutil.rmtree(self._dir, ignore_errors=True)

    @staticmethod
    def answer(response: dict) -> web.Response:
        """An AdmissionReview carrying ``response``."""
        return web.json_response({"apiVersion": "admission.k8s.io/v1",
                                  "kind": "AdmissionReview", "response": response})
