"""Running one probe or hook action: upstream's prober/prober.go and pkg/probe/{exec,http,tcp,grpc}.

Role: `Prober.probe` runs a container's liveness, readiness or startup probe once
(exec through CRI ExecSync with the probe's timeout, httpGet, tcpSocket, grpc) and
answers a `Result` with upstream's output text, recording upstream's events
(`Unhealthy`: "Liveness probe failed: ...", "... probe errored: ...";
`ProbeWarning`). The network side sits behind `ProbeNetwork`
(`NetworkProbes` dials for real; tests pass a twin); `hooks` reuses it for
httpGet lifecycle handlers.

Invariants:
- Network probes go from the node to the pod's own IPs only: a `host` that is not
  one of the pod's IPs is a probe error, never dialled (the machine's network
  safety rule; upstream would dial anything).
- Named ports resolve through the container's `ports`; a port outside 1..65535 or
  an unknown name is a probe error. Errors are retried up to 3 times (upstream's
  maxProbeRetries) and then reported as `ERROR`, which the worker throws away.
- Exec commands get `$(VAR)` expansion from the container's literal env values
  only (ExpandContainerCommandOnlyStatic).
"""
from __future__ import annotations

import asyncio
import enum
import json
import logging
import urllib.parse
from typing import Callable, Protocol

import aiohttp

from pyk8s import aio
from pyk8s.cri import health
from pyk8s.cri.runtime import CRIError, DeadlineExceeded, Runtime
from pyk8s.kubelet import containers as ctr
from pyk8s.kubelet import pods

log = logging.getLogger(__name__)

MAX_PROBE_RETRIES = 3
MAX_BODY = 10 * 1024  # upstream's maxRespBodyLength
MAX_REDIRECTS = 10
USER_AGENT = "kube-probe/1.32"


class Result(enum.Enum):
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"
    ERROR = "error"  # the probe could not run; its result is thrown away


class ProbeError(Exception):
    """The probe could not be run (bad port, foreign host): upstream's probe error."""


class ProbeNetwork(Protocol):
    """Dialling a pod for probes and hooks. Every call is bounded by `timeout`."""

    async def http_get(self, url: str, *, headers: dict[str, str], timeout: float
                       ) -> tuple[Result, str]:
        """GET `url`: (SUCCESS, body) for 2xx/3xx, (FAILURE, upstream's text) else;
        a redirect to another host ends as (WARNING, ...), as upstream's client."""
        ...

    async def tcp_connect(self, host: str, port: int, *, timeout: float) -> tuple[Result, str]:
        """Open and close a TCP connection: (SUCCESS, "") or (FAILURE, the dial error)."""
        ...

    async def grpc_check(self, host: str, port: int, service: str, *, timeout: float
                         ) -> tuple[Result, str]:
        """`grpc.health.v1.Health/Check`: SUCCESS when SERVING, else FAILURE."""
        ...


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(address: str, e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return f"dial tcp {address}: i/o timeout"
    if isinstance(e, ConnectionRefusedError):
        return f"dial tcp {address}: connect: connection refused"
    if isinstance(e, OSError) and e.strerror:
        return f"dial tcp {address}: connect: {e.strerror.lower()}"
    return f"dial tcp {address}: {e}"


class NetworkProbes:
    """`ProbeNetwork` over real sockets (aiohttp for HTTP, no keep-alive, no TLS checks)."""

    async def http_get(self, url: str, *, headers: dict[str, str], timeout: float
                       ) -> tuple[Result, str]:
        connector = aiohttp.TCPConnector(ssl=False, force_close=True)
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=client_timeout,
                                         skip_auto_headers=("User-Agent",)) as session:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    async with session.get(current, headers=headers,
                                           allow_redirects=False) as response:
                        body = (await response.content.read(MAX_BODY)).decode(errors="replace")
                        code, location = response.status, response.headers.get("Location")
                except asyncio.TimeoutError:
                    return Result.FAILURE, (f"Get \"{current}\": context deadline exceeded "
                                            "(Client.Timeout exceeded while awaiting headers)")
                except aiohttp.ClientConnectorError as e:
                    parsed = urllib.parse.urlsplit(current)
                    address = _join(parsed.hostname or "", parsed.port or 80)
                    return Result.FAILURE, f"Get \"{current}\": {_dial_error(address, e.os_error)}"
                except aiohttp.ClientError as e:
                    return Result.FAILURE, f"Get \"{current}\": {e}"
                if 300 <= code < 400 and location:
                    target = urllib.parse.urljoin(current, location)
                    if urllib.parse.urlsplit(target).netloc != urllib.parse.urlsplit(url).netloc:
                        # upstream stops at a redirect to another host: a success with
                        # a warning (and here: never dial what is not the pod)
                        return Result.WARNING, f"Probe terminated redirects, Response body: {body}"
                    current = target
                    continue
                if 200 <= code < 400:
                    return Result.SUCCESS, body
                return Result.FAILURE, f"HTTP probe failed with statuscode: {code}"
            return Result.FAILURE, f"Get \"{current}\": stopped after {MAX_REDIRECTS} redirects"

    async def tcp_connect(self, host: str, port: int, *, timeout: float) -> tuple[Result, str]:
        try:
            _, writer = await aio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, asyncio.TimeoutError) as e:
            return Result.FAILURE, _dial_error(_join(host, port), e)
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return Result.SUCCESS, ""

    async def grpc_check(self, host: str, port: int, service: str, *, timeout: float
                         ) -> tuple[Result, str]:
        ok, message = await health.check_health(_join(host, port), service, timeout=timeout)
        return (Result.SUCCESS if ok else Result.FAILURE), message


# ---- resolving a handler's target -------------------------------------------------------

def resolve_port(port, container: dict) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, str) and not port.isdigit():
        found = next((p.get("containerPort") for p in container.get("ports") or []
                      if p.get("name") == port), None)
        if found is None:
            raise ProbeError(f"couldn't find port: {port} in {container['name']}")
        port = found
    number = int(port)
    if not 0 < number < 65536:
        raise ProbeError(f"invalid port number: {number}")
    return number


def pod_host(host: str, pod_ips: list[str]) -> str:
    """The address to dial: the pod's IP, or `host` if it is one of the pod's IPs."""
    if not pod_ips:
        raise ProbeError("the pod has no IP yet")
    if not host:
        return pod_ips[0]
    if host not in pod_ips:
        raise ProbeError(f"host {host} is not an IP of the pod; this node only probes "
                         "pod IPs")
    return host


def http_request(action: dict, container: dict, pod_ips: list[str]
                 ) -> tuple[str, dict[str, str]]:
    """The URL and headers of an httpGet action (upstream's NewRequestForHTTPGetAction)."""
    scheme = (action.get("scheme") or "HTTP").lower()
    host = pod_host(action.get("host") or "", pod_ips)
    port = resolve_port(action.get("port"), container)
    path = action.get("path") or ""
    if path and not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{_join(host, port)}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in action.get("httpHeaders") or []:
        name = h.get("name", "")
        # a header the user sets replaces the default of the same name
        for default in [k for k in headers if k.lower() == name.lower()]:
            del headers[default]
        headers[name] = h.get("value", "")
    return url, headers


def static_command(command: list[str], container: dict) -> list[str]:
    literal = {e["name"]: e.get("value", "") for e in container.get("env") or []
               if "valueFrom" not in e}
    return [ctr.expand(a, literal) for a in command]


def go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# ---- the prober ----------------------------------------------------------------------------

EventFn = Callable[..., None]  # (pod, type, reason, message, field_path=...)


class Prober:
    def __init__(self, runtime: Runtime, network: ProbeNetwork, events: EventFn):
        self.runtime, self.network, self.events = runtime, network, events

    async def probe(self, kind: str, pod: dict, container: dict, container_id: str,
                    pod_ips: list[str]) -> Result:
        """Run `container`'s `kind` ("Liveness", "Readiness", "Startup") probe once."""
        spec = container.get(f"{kind.lower()}Probe") or {}
        field = _field_path(pod, container["name"])
        result, output = Result.ERROR, ""
        for _ in range(MAX_PROBE_RETRIES):
            try:
                result, output = await self._run(spec, container, container_id, pod_ips)
                break
            except (ProbeError, CRIError) as e:
                output = getattr(e, "message", None) or str(e)
        if result is Result.ERROR:
            self.events(pod, "Warning", "Unhealthy", f"{kind} probe errored: {output}",
                        field_path=field)
        elif result is Result.FAILURE:
            self.events(pod, "Warning", "Unhealthy", f"{kind} probe failed: {output}",
                        field_path=field)
        elif result is Result.WARNING:
            self.events(pod, "Warning", "ProbeWarning", f"{kind} probe warning: {output}",
                        field_path=field)
        return result

    async def _run(self, spec: dict, container: dict, container_id: str,
                   pod_ips: list[str]) -> tuple[Result, str]:
        timeout = float(spec.get("timeoutSeconds") or 1)
        if "exec" in spec:
            command = static_command((spec["exec"] or {}).get("command") or [], container)
            try:
                result = await self.runtime.exec_sync(container_id, command, timeout=timeout)
            except DeadlineExceeded:
                return Result.FAILURE, f"command {go_quote(' '.join(command))} timed out"
            output = (result.stdout + result.stderr).decode(errors="replace")
            return (Result.SUCCESS if result.exit_code == 0 else Result.FAILURE), output
        if "httpGet" in spec:
            url, headers = http_request(spec["httpGet"] or {}, container, pod_ips)
            return await self.network.http_get(url, headers=headers, timeout=timeout)
        if "tcpSocket" in spec:
            action = spec["tcpSocket"] or {}
            host = pod_host(action.get("host") or "", pod_ips)
            return await self.network.tcp_connect(
                host, resolve_port(action.get("port"), container), timeout=timeout)
        if "grpc" in spec:
            action = spec["grpc"] or {}
            host = pod_host("", pod_ips)
            return await self.network.grpc_check(
                host, resolve_port(action.get("port"), container),
                action.get("service") or "", timeout=timeout)
        raise ProbeError("missing probe handler")


def _field_path(pod: dict, name: str) -> str:
    kind = "initContainers" if any(c["name"] == name for c in pods.init_containers(pod)) \
        else "containers"
    return f"spec.{kind}{{{name}}}"
