"""Who may call the kubelet's HTTPS endpoint: certificates, tokens, reviews.

The kubelet app (server.make_app with auth.py's middleware) serves on 127.0.0.1 with
TLS; its API client is a stand-in that answers TokenReviews and
SubjectAccessReviews from tables and records what it was asked.
"""
import ssl

import aiohttp
import pytest
from aiohttp import web

from pyk8s.kubelet.auth import SECURE, AuthConfig, KubeletAuth, request_attributes
from pyk8s.kubelet.server import make_app, ssl_context
from pyk8s.pki import issue, make_ca


class Reviews:
    """The API server as far as the kubelet asks it."""

    def __init__(self, tokens: dict, allowed: set, fail: bool = False):
        self.tokens, self.allowed, self.fail = tokens, allowed, fail
        self.asked: list[dict] = []

    async def request(self, method, path, *, body=None, **kw):
        self.asked.append(body)
        if self.fail:
            raise ConnectionRefusedError("connection refused")
        if body["kind"] == "TokenReview":
            user = self.tokens.get(body["spec"]["token"])
            return {"status": {"authenticated": bool(user), "user": user or {}}}
        spec = body["spec"]
        attrs = spec["resourceAttributes"]
        key = (spec["user"], attrs["verb"], attrs["subresource"])
        return {"status": {"allowed": key in self.allowed}}


class Logs:
    async def read_logs(self, namespace, pod, container=None, **kw):
        async def stream():
            yield b"hello\n"
        return stream()


@pytest.fixture
def pki(tmp_path):
    ca = make_ca("test-ca")
    files = {}
    for name, pair in (("ca", ca), ("serving", issue(ca, "node", server=True,
                                                      ips=("127.0.0.1",))),
                       ("alice", issue(ca, "alice", orgs=("devs",), client=True)),
                       ("bob", issue(ca, "bob", client=True))):
        crt, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        crt.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        files[name] = (str(crt), str(key))
    stranger = issue(make_ca("other-ca"), "mallory", client=True)
    (tmp_path / "mallory.crt").write_bytes(stranger.cert_pem)
    (tmp_path / "mallory.key").write_bytes(stranger.key_pem)
    files["mallory"] = (str(tmp_path / "mallory.crt"), str(tmp_path / "mallory.key"))
    return files


async def serve(pki, reviews: Reviews, config: AuthConfig = SECURE):
    auth = KubeletAuth(config, client=reviews, node_name="node-a")
    runner = web.AppRunner(make_app(Logs(), middlewares=[auth.middleware]),
                           handle_signals=False)
    await runner.setup()
    context = ssl_context(*pki["serving"], pki["ca"][0])
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()  # on a port the kernel picks, read back: no port to race for
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"https://127.0.0.1:{port}"


async def call(url: str, pki, *, cert: str = "", token: str = "", method: str = "GET"):
    ctx = ssl.create_default_context(cafile=pki["ca"][0])
    if cert:
        ctx.load_cert_chain(*pki[cert])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s:
        async with s.request(method, url, ssl=ctx, headers=headers) as r:
            return r.status, await r.text()


LOGS = "/containerLogs/ns/web/app"


async def test_certificates_and_reviews_decide(pki):
    reviews = Reviews({}, {("alice", "get", "proxy")})
    runner, url = await serve(pki, reviews)
    try:
        assert await call(url + LOGS, pki) == (401, "Unauthorized")
        assert await call(url + "/healthz", pki) == (200, "ok")
        assert await call(url + LOGS, pki, cert="alice") == (200, "hello\n")
        review = reviews.asked[-1]
        assert review["kind"] == "SubjectAccessReview"
        assert review["spec"] == {"user": "alice", "groups": ["devs", "system:authenticated"],
                                  "resourceAttributes": {
                                      "verb": "get", "group": "", "version": "v1",
                                      "resource": "nodes", "subresource": "proxy",
                                      "name": "node-a"}}
        assert await call(url + LOGS, pki, cert="bob") == (
            403, "Forbidden (user=bob, verb=get, resource=nodes, subresource=proxy)")
        # a decision is cached: asking again does not ask the API server again
        asked = len(reviews.asked)
        assert (await call(url + LOGS, pki, cert="alice"))[0] == 200
        assert len(reviews.asked) == asked
    finally:
        await runner.cleanup()


async def test_a_certificate_from_another_ca_is_refused(pki):
    runner, url = await serve(pki, Reviews({}, set()))
    try:
        with pytest.raises(aiohttp.ClientError):
            await call(url + LOGS, pki, cert="mallory")
    finally:
        await runner.cleanup()


async def test_bearer_tokens_are_reviewed(pki):
    carol = {"username": "system:serviceaccount:ns:carol", "uid": "u-1",
             "groups": ["system:serviceaccounts"], "extra": {"k": ["v"]}}
    reviews = Reviews({"good": carol}, {("system:serviceaccount:ns:carol", "create", "proxy")})
    runner, url = await serve(pki, reviews)
    try:
        status, _ = await call(url + LOGS, pki, token="good", method="POST")
        assert status == 405  # authorized (create on proxy), then the route's answer
        assert reviews.asked[0] == {"apiVersion": "authentication.k8s.io/v1",
                                    "kind": "TokenReview", "spec": {"token": "good"}}
        spec = reviews.asked[1]["spec"]
        assert (spec["user"], spec["uid"], spec["extra"]) == (carol["username"], "u-1",
                                                              {"k": ["v"]})
        assert spec["groups"] == ["system:serviceaccounts", "system:authenticated"]
        assert await call(url + LOGS, pki, token="good") == (
            403, "Forbidden (user=system:serviceaccount:ns:carol, verb=get, resource=nodes, "
                 "subresource=proxy)")
        assert await call(url + LOGS, pki, token="bad") == (401, "Unauthorized")
    finally:
        await runner.cleanup()


async def test_an_unreachable_api_server_fails_closed(pki):
    reviews = Reviews({}, set(), fail=True)
    runner, url = await serve(pki, reviews)
    try:
        assert await call(url + LOGS, pki, token="any") == (401, "Unauthorized")
        assert await call(url + LOGS, pki, cert="alice") == (
            500, "Authorization error (user=alice, verb=get, resource=nodes, "
                 "subresource=proxy)")
    finally:
        await runner.cleanup()


async def test_upstream_defaults_stay_open(pki):
    reviews = Reviews({}, set())
    runner, url = await serve(pki, reviews, AuthConfig())
    try:
        assert await call(url + LOGS, pki) == (200, "hello\n")
        assert reviews.asked == []
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("method,path,verb,sub", [
    ("GET", "/stats/summary", "get", "stats"), ("GET", "/stats", "get", "stats"),
    ("GET", "/metrics", "get", "metrics"), ("GET", "/metrics/cadvisor", "get", "metrics"),
    ("GET", "/metricsx", "get", "proxy"), ("GET", "/logs/syslog", "get", "log"),
    ("GET", "/spec/", "get", "spec"), ("POST", "/exec/ns/p/c", "create", "proxy"),
    ("GET", "/portForward/ns/p", "get", "proxy"), ("GET", "/pods", "get", "proxy"),
    ("PUT", "/x", "update", "proxy"), ("PATCH", "/x", "patch", "proxy"),
    ("DELETE", "/x", "delete", "proxy")])
def test_request_attributes_as_upstream(method, path, verb, sub):
    attrs = request_attributes(method, path, "n1")
    assert (attrs["verb"], attrs["subresource"], attrs["resource"], attrs["name"]) == (
        verb, sub, "nodes", "n1")
