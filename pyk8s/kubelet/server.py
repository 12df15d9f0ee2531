"""The kubelet's HTTPS endpoint: container logs for the API server (upstream's server.go).

Role: serve `GET /containerLogs/{namespace}/{pod}/{container}` with upstream's
query parameters (`follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`,
`timestamps`, `limitBytes`) as a streamed `text/plain` body, and `GET /healthz`.
The API server's `pods/log` proxies to it at the node's InternalIP and
`status.daemonEndpoints.kubeletEndpoint.Port`. The other routes come from setups:
streaming.py (exec, attach), portforward.py, stats.py and syslogs.py (`/logs/`).

Invariants:
- Errors answer a `Status` JSON body with upstream's code and message (400 for
  a container that has no logs yet, 404 for an unknown pod), before any byte of a
  log is sent.
- TLS always: the given certificate, else a self-signed one kept under the root
  dir (as the kubelet without --tls-cert-file). With a client CA, a client
  certificate, when presented, must be one it signed (x509 authentication); who
  may call what is auth.py's middleware (token reviews, subject access reviews).
"""
from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from pathlib import Path
from typing import AsyncIterator, Callable, Iterable, Protocol

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .. import aio


log = logging.getLogger(__name__)


class LogError(Exception):
    """A log read that cannot be served; `code` is the HTTP status."""

    def __init__(self, code: int, message: str, reason: str = "BadRequest"):
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason

    def status(self) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


class LogReader(Protocol):
    async def read_logs(self, namespace: str, pod: str, container: str | None = None, *,
                        follow: bool = False, previous: bool = False,
                        tail_lines: int | None = None, since_seconds: int | None = None,
                        since_time: datetime.datetime | None = None, timestamps: bool = False,
                        limit_bytes: int | None = None) -> AsyncIterator[bytes]:
        """Check the request (raising LogError) and return the log stream."""
        ...


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _int(query, name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise LogError(400, f"invalid {name}: {value!r}") from None


def options_from_query(query) -> dict:
    """`read_logs` keyword arguments from upstream's PodLogOptions query parameters."""
    since_time = None
    if query.get("sinceTime"):
        try:
            since_time = datetime.datetime.fromisoformat(query["sinceTime"].replace("Z",
                                                                                   "+00:00"))
        except ValueError:
            raise LogError(400, f"invalid sinceTime: {query['sinceTime']!r}") from None
    return {"follow": _bool(query.get("follow")), "previous": _bool(query.get("previous")),
            "tail_lines": _int(query, "tailLines"), "since_seconds": _int(query, "sinceSeconds"),
            "since_time": since_time, "timestamps": _bool(query.get("timestamps")),
            "limit_bytes": _int(query, "limitBytes")}


AppSetup = Callable[[web.Application], None]


def make_app(reader: LogReader, *, setups: Iterable[AppSetup] = (),
             middlewares: Iterable = ()) -> web.Application:
    """The endpoint's routes; each of ``setups`` adds its own (streaming, stats, ...)."""
    async def container_logs(request: web.Request) -> web.StreamResponse:
        m = request.match_info
        try:
            stream = await reader.read_logs(m["namespace"], m["pod"], m.get("container"),
                                            **options_from_query(request.query))
        except LogError as e:
            return web.json_response(e.status(), status=e.code)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        if await aio.stream_to_client(request, response, stream):
            await response.write_eof()
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=list(middlewares))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    for setup in setups:
        setup(app)
    return app


def self_signed(directory: Path, host: str, ips: list[str]) -> tuple[Path, Path]:
    """A self-signed serving certificate for `host` (made once, then reused)."""
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{host}@pyk8s")])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans: list[x509.GeneralName] = [x509.DNSName(host)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips if ip]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def ssl_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        # a certificate, when given, must come from the CA; callers without one may
        # still authenticate with a bearer token (auth.py decides, as upstream's
        # VerifyClientCertIfGiven)
        ctx.load_verify_locations(str(client_ca))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


async def serve(reader: LogReader, *, address: str, port: int, context: ssl.SSLContext,
                setups: Iterable[AppSetup] = (), middlewares: Iterable = ()) -> web.AppRunner:
    """Start serving; the caller cleans the runner up."""
    runner = web.AppRunner(make_app(reader, setups=setups, middlewares=middlewares),
                           access_log=None, handle_signals=False,
                           shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, address, port, ssl_context=context, reuse_address=True).start()
    return runner
