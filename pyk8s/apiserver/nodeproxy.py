"""The pod subresources a kubelet serves: log, exec, attach, portforward.

As upstream's LogLocation / ExecLocation / AttachLocation / PortForwardLocation
(pkg/registry/core/pod/strategy.go): pick and check the container name, find the
node's InternalIP and kubelet port in the Node's status, then ask the kubelet over
HTTPS with the API server's kubelet client certificate:

- ``pods/log``: GET ``/containerLogs/<ns>/<pod>/<container>``, streamed through. A
  Status the kubelet sends before any log bytes (waiting container, missing previous
  instance) reaches the client unchanged.
- ``pods/exec`` and ``pods/attach`` (GET for WebSockets, POST for SPDY):
  ``/exec|attach/<ns>/<pod>/<container>`` with upstream's kubelet parameters
  (stdin->input, stdout->output, stderr->error, tty->tty as ``1``, each ``command``),
  ``pods/portforward``: ``/portForward/<ns>/<pod>`` with the ports as ``port`` (the
  kubelet's name; ``ports`` too); the upgrade is relayed by proxying.py and the
  streams are the kubelet's business.

Invariants: the pod must exist (404), have a node (400 "pod X does not have a host
assigned") and, for exec/attach, the container must be one of its own (400); a
WebSocket upgrade (a GET) needs ``create`` on the subresource as well as ``get``, so
``get pods/exec`` alone never opens a shell. That is upstream's
AuthorizePodWebsocketUpgradeCreatePermission, on by default from 1.35; v1.32 asked
for ``get`` only, which let read-only roles exec (the privilege escalation it fixed).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from .. import aio
from ..api import errors
from . import proxying
from .requests import Target

if TYPE_CHECKING:
    from .app import APIServer

log = logging.getLogger(__name__)

LOG_PARAMS = ("follow", "previous", "tailLines", "sinceSeconds", "sinceTime", "timestamps",
              "limitBytes", "insecureSkipTLSVerifyBackend")


def choose_container(pod: dict, wanted: str) -> str:
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    names = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not wanted:
        if len(names) == 1:
            return names[0]
        msg = (f"a container name must be specified for pod {name}, choose one of: "
               f"[{' '.join(names)}]")
        if init:
            msg += f" or one of the init containers: [{' '.join(init)}]"
        raise errors.bad_request(msg)
    if wanted not in names + init + ephemeral:
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def kubelet_address(node: dict) -> tuple[str, int]:
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("Hostname") or ""
    port = (((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {})
            .get("Port") or 10250)
    if not host:
        raise errors.bad_request(f"node {node['metadata']['name']} has no address to reach "
                                 f"its kubelet")
    return host, int(port)


class KubeletClient:
    """HTTPS to kubelets with the API server's client certificate (the cluster CA
    signs it, so kubelets started with --client-ca-file accept it)."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self._ssl: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # Kubelets serve self-signed certificates unless given one; upstream skips
            # verification without --kubelet-certificate-authority, and so do we.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            tls = os.path.join(self.data_dir, "server", "tls")
            crt, key = (os.path.join(tls, "client-admin.crt"),
                        os.path.join(tls, "client-admin.key"))
            if os.path.exists(crt):
                ctx.load_cert_chain(crt, key)
            self._ssl = ctx
        return self._ssl


async def serve_log(server: "APIServer", request: web.Request, t: Target) -> web.StreamResponse:
    pods = server.stores[("", "v1", "pods")]
    pod = await pods.get(t.namespace, t.name)
    container = choose_container(pod, request.query.get("container", ""))
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {t.name} does not have a host assigned")
    nodes = server.stores[("", "v1", "nodes")]
    host, port = kubelet_address(await nodes.get("", node_name))
    query = {k: v for k, v in request.query.items() if k in LOG_PARAMS}
    url = f"https://{host}:{port}/containerLogs/{t.namespace}/{t.name}/{container}"
    client = server.kubelet_client
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url, params=query, ssl=client.ssl_context()) as upstream:
                if upstream.status != 200:
                    body = await upstream.read()
                    return web.Response(body=body, status=upstream.status,
                                        content_type=upstream.content_type or "text/plain")
                resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                await _copy_log(request, resp, upstream, url)
                return resp
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as err:
        raise errors.APIError(
            500, "InternalError",
            f"Get \"{url}\": {err}") from None


async def _copy_log(request: web.Request, resp: web.StreamResponse,
                    upstream: aiohttp.ClientResponse, url: str) -> None:
    """Copy the kubelet's log stream to the client until either side ends it.

    The client leaving closes the kubelet stream at once (not at the container's
    next line); the kubelet going away mid-stream ends the client's stream cleanly,
    as upstream's proxy does (headers are sent: no Status can follow).
    """
    try:
        if not await aio.stream_to_client(request, resp, upstream.content.iter_any()):
            # the client left: drop the kubelet's connection instead of pooling it
            upstream.close()
            log.debug("log stream %s: client went away", url)
            return
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError) as err:
        log.info("log stream %s ended: %s", url, err or type(err).__name__)
        upstream.close()
    if not aio.client_left(request):
        try:
            await resp.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionError) as e:
            log.debug("log stream %s: client went away at the end: %s", url, e)


# -- exec, attach, portforward ------------------------------------------------------------

STREAM_FLAGS = (("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty"))


def parse_bool(name: str, value: str) -> bool:
    """A query flag as Go's strconv.ParseBool reads it (the parameter codec's rule)."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise errors.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax '
                             f'(parameter {name})')


def stream_query(subresource: str, query) -> list[tuple[str, str]]:
    """The kubelet's query for PodExecOptions / PodAttachOptions / PodPortForwardOptions
    (upstream's streamParams)."""
    params: list[tuple[str, str]] = []
    if subresource == "portforward":
        ports: list[str] = []
        for raw in query.getall("ports", []):
            for part in raw.split(","):
                try:
                    port = int(part.strip())
                except ValueError:
                    raise errors.bad_request(f'strconv.ParseInt: parsing "{part}": invalid '
                                             f'syntax') from None
                ports.append(str(port))
        if ports:
            # upstream's kubelet reads ``port`` (api.PortHeader); ``ports``, the API's own
            # name, goes along for kubelets that read the PodPortForwardOptions name
            params += [("port", ",".join(ports)), ("ports", ",".join(ports))]
        return params
    for option, kubelet_name in STREAM_FLAGS:
        values = query.getall(option, [])
        if values and parse_bool(option, values[-1]):
            params.append((kubelet_name, "1"))
    if subresource == "exec":
        params += [("command", c) for c in query.getall("command", [])]
    return params


async def _node_location(server: "APIServer", pod: dict, path: str,
                         query: list[tuple[str, str]]) -> proxying.Location:
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host "
                                 f"assigned")
    host, port = kubelet_address(await server.stores[("", "v1", "nodes")].get("", node_name))
    # sorted by key, as Go's url.Values.Encode writes it
    return proxying.Location("https", host, port, path,
                             urlencode(sorted(query, key=lambda kv: kv[0])),
                             ssl=server.kubelet_client.ssl_context())


async def _authorize_upgrade(server: "APIServer", request: web.Request) -> None:
    """A GET that opens a stream must also be allowed to ``create`` it: the RBAC check
    of the request itself saw only ``get``."""
    from . import authz, security
    ctx = security.current()
    if request.method != "GET" or ctx is None or ctx.user is None:
        return
    attrs = dataclasses.replace(ctx.attrs, verb="create")
    allowed, reason = await authz.authorize(server, ctx.user, attrs)
    if not allowed:
        raise authz.forbidden(ctx.user, attrs, reason)


async def serve_stream(server: "APIServer", request: web.Request,
                       t: Target) -> web.StreamResponse:
    """pods/exec, pods/attach and pods/portforward: relayed to the pod's kubelet."""
    await _authorize_upgrade(server, request)
    pod = await server.stores[("", "v1", "pods")].get(t.namespace, t.name)
    query = stream_query(t.subresource, request.query)
    if t.subresource == "portforward":
        path = f"/portForward/{t.namespace}/{t.name}"
    else:
        container = choose_container(pod, request.query.get("container", ""))
        path = f"/{t.subresource}/{t.namespace}/{t.name}/{container}"
    location = await _node_location(server, pod, path, query)
    return await proxying.proxy(request, location, upgrade_required=True)
