"""Kubeconfig and in-cluster configuration, checked by connecting to a TLS server
that demands a client certificate."""
from __future__ import annotations

import base64
import os
import ssl

import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from pyk8s.client import Client, ConfigError, load_incluster_config, load_kubeconfig
from pyk8s.client.config import config_from_dict, load_cert_chain
from pyk8s.pki import issue, make_ca

pytestmark = pytest.mark.timeout(60)

b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731


@pytest.fixture(scope="module")
def pki():
    ca = make_ca("test-ca")
    return {"ca": ca, "server": issue(ca, "server", server=True, ips=("127.0.0.1",)),
            "client": issue(ca, "alice", orgs=("devs",), client=True),
            "other_ca": make_ca("other-ca")}


@pytest_asyncio.fixture
async def tls_server(pki, tmp_path):
    """An HTTPS echo server: answers who the client certificate and headers say we are."""
    async def whoami(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") or {}
        cn = dict(x[0] for x in peer.get("subject", ())).get("commonName", "")
        return web.json_response({"cn": cn, "auth": request.headers.get("Authorization", "")})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    (tmp_path / "srv.crt").write_bytes(pki["server"].cert_pem)
    (tmp_path / "srv.key").write_bytes(pki["server"].key_pem)
    (tmp_path / "ca.crt").write_bytes(pki["ca"].cert_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
    ctx.load_verify_locations(tmp_path / "ca.crt")
    ctx.verify_mode = ssl.CERT_OPTIONAL
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}"
    await runner.cleanup()


def kubeconfig(server: str, cluster: dict, user: dict, **context) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "main",
            "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u", **context}}]}


async def whoami(cfg) -> dict:
    async with Client(cfg) as client:
        return await client.request("GET", "/whoami")


async def test_inline_certificates(pki, tls_server):
    cfg = config_from_dict(kubeconfig(
        tls_server, {"certificate-authority-data": b64(pki["ca"].cert_pem)},
        {"client-certificate-data": b64(pki["client"].cert_pem),
         "client-key-data": b64(pki["client"].key_pem)}, namespace="team"))
    assert cfg.namespace == "team"
    assert await whoami(cfg) == {"cn": "alice", "auth": ""}


async def test_certificate_files_relative_to_the_kubeconfig(pki, tls_server, tmp_path):
    d = tmp_path / "kube"
    (d / "pki").mkdir(parents=True)
    (d / "pki" / "ca.crt").write_bytes(pki["ca"].cert_pem)
    (d / "pki" / "me.crt").write_bytes(pki["client"].cert_pem)
    (d / "pki" / "me.key").write_bytes(pki["client"].key_pem)
    (d / "config").write_text(yaml.safe_dump(kubeconfig(
        tls_server, {"certificate-authority": "pki/ca.crt"},
        {"client-certificate": "pki/me.crt", "client-key": "pki/me.key"})))
    assert (await whoami(load_kubeconfig(str(d / "config"))))["cn"] == "alice"


async def test_clients_of_one_kubeconfig_present_a_renewed_certificate(pki, tls_server):
    """The kubelet's certificate manager loads a renewed certificate into its client's
    TLS context; kube-proxy and DNS, loaded from the same node kubeconfig, use it too."""
    doc = kubeconfig(tls_server, {"certificate-authority-data": b64(pki["ca"].cert_pem)},
                     {"client-certificate-data": b64(pki["client"].cert_pem),
                      "client-key-data": b64(pki["client"].key_pem)})
    kubelet, proxy = config_from_dict(doc), config_from_dict(doc)
    renewed = issue(pki["ca"], "alice-renewed", orgs=("devs",), client=True)
    load_cert_chain(kubelet.ssl_context, cert=renewed.cert_pem, key=renewed.key_pem)
    assert (await whoami(proxy))["cn"] == "alice-renewed"


async def test_wrong_ca_is_refused_unless_verification_is_skipped(pki, tls_server):
    from pyk8s.client import TransportError
    wrong = config_from_dict(kubeconfig(
        tls_server, {"certificate-authority-data": b64(pki["other_ca"].cert_pem)},
        {"token": "t0k"}))
    with pytest.raises(TransportError):
        await whoami(wrong)
    insecure = config_from_dict(kubeconfig(tls_server, {"insecure-skip-tls-verify": True},
                                           {"token": "t0k"}))
    assert await whoami(insecure) == {"cn": "", "auth": "Bearer t0k"}


async def test_token_file_is_reread_when_it_changes(pki, tls_server, tmp_path):
    token = tmp_path / "token"
    token.write_text("first\n")
    cfg = config_from_dict(kubeconfig(
        tls_server, {"certificate-authority-data": b64(pki["ca"].cert_pem)},
        {"tokenFile": str(token)}))
    assert (await whoami(cfg))["auth"] == "Bearer first"
    token.write_text("second")
    os.utime(token, (1, 1))  # a different mtime, as a rotation gives
    assert (await whoami(cfg))["auth"] == "Bearer second"


def test_basic_auth_header():
    cfg = config_from_dict(kubeconfig("https://h:1", {"insecure-skip-tls-verify": True},
                                      {"username": "admin", "password": "s3cret"}))
    assert cfg.auth_headers() == {"Authorization": "Basic " + b64(b"admin:s3cret")}


def test_several_files_first_definition_wins(tmp_path):
    one = kubeconfig("https://one:6443", {"insecure-skip-tls-verify": True}, {"token": "a"})
    two = kubeconfig("https://two:6443", {"insecure-skip-tls-verify": True}, {"token": "b"})
    two["current-context"] = "second"
    two["contexts"].append({"name": "second", "context": {"cluster": "c", "user": "u"}})
    (tmp_path / "one").write_text(yaml.safe_dump(one))
    (tmp_path / "two").write_text(yaml.safe_dump(two))
    paths = [str(tmp_path / "missing"), str(tmp_path / "one"), str(tmp_path / "two")]
    cfg = load_kubeconfig(paths)
    assert cfg.server == "https://one:6443" and cfg.token == "a"
    assert load_kubeconfig(paths, context="second").server == "https://one:6443"


def test_configuration_errors(tmp_path):
    with pytest.raises(ConfigError, match="no kubeconfig found"):
        load_kubeconfig(str(tmp_path / "nope"))
    base = kubeconfig("https://h:1", {}, {"exec": {"command": "get-token"}})
    with pytest.raises(ConfigError, match="exec credentials are not supported"):
        config_from_dict(base)
    with pytest.raises(ConfigError, match='context "other" not found'):
        config_from_dict(base, context="other")


def test_in_cluster_config(pki, tmp_path):
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(pki["ca"].cert_pem)
    (tmp_path / "namespace").write_text("kube-system")
    env = {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = load_incluster_config(root=str(tmp_path), env=env)
    assert cfg.server == "https://10.43.0.1:443" and cfg.namespace == "kube-system"
    assert cfg.auth_headers() == {"Authorization": "Bearer sa-token"}
    v6 = load_incluster_config(root=str(tmp_path),
                               env={**env, "KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert v6.server == "https://[fd00::1]:443"
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        load_incluster_config(root=str(tmp_path), env={})
