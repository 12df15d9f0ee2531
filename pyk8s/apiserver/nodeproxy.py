"""pods/log: the API server asks the pod's kubelet and streams its answer through.

As upstream's LogLocation: pick and check the container name, find the node's
InternalIP and kubelet port in the Node's status, then GET
``/containerLogs/<ns>/<pod>/<container>`` over HTTPS with the API server's kubelet
client certificate. A Status the kubelet sends before any log bytes (waiting
container, missing previous instance) reaches the client unchanged.
"""
from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from ..api import errors
from .requests import Target

if TYPE_CHECKING:
    from .app import APIServer

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
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
    except aiohttp.ClientConnectionError as err:
        raise errors.APIError(
            500, "InternalError",
            f"Get \"{url}\": {err}") from None
