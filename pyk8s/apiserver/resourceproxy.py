"""pods/proxy, services/proxy and nodes/proxy: any HTTP request passed on to a pod, a
service's endpoint or a node (upstream's ResourceLocation + UpgradeAwareHandler).

URLs: ``/api/v1/namespaces/<ns>/pods/<[scheme:]name[:port]>/proxy[/path]``,
``/api/v1/namespaces/<ns>/services/<[scheme:]name[:port]>/proxy[/path]`` and
``/api/v1/nodes/<[scheme:]name[:port]>/proxy[/path]``; the query goes along.

- Pods: the pod's first IP; without a port, the first declared container port.
- Services: a numeric port names the service port with that number (503 "no service
  port N found for service" otherwise); the endpoint is picked at random among the
  ready endpoints of the Service's EndpointSlices whose port carries that name and
  whose target pod still has the address (503 "no endpoints available for service").
  Upstream 1.32 reads the Endpoints object; the slices hold the same addresses.
- Nodes: without a port (or with the kubelet's) the kubelet over HTTPS with the API
  server's client certificate; another port is plain HTTP to the node's address.

Invariants: a proxy URL without a trailing path answers 301 to the same URL with a
``/`` for GET and HEAD (upstream's hack for relative links); a pod, an endpoint or a
node port other than the kubelet's that is not a routable address (loopback,
link-local, unspecified, multicast) is refused 400 "address not allowed", so the
proxy cannot reach the API server's own host services. Tests that stand in for pods
with servers on 127.0.0.1 set ``PYK8S_PROXY_ALLOW_LOOPBACK=1`` in the API server's
environment; nothing else reads it.
"""
from __future__ import annotations

import ipaddress
import os
import random
from typing import TYPE_CHECKING

from aiohttp import web

from ..api import errors
from . import proxying
from .nodeproxy import kubelet_address
from .requests import Target

if TYPE_CHECKING:
    from .app import APIServer

PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
SCHEMES = ("", "http", "https")
DEFAULT_PORTS = {"http": "80", "https": "443"}
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def split_scheme_name_port(ident: str) -> tuple[str, str, str] | None:
    """``name``, ``name:port`` or ``scheme:name:port`` (upstream's SplitSchemeNamePort)."""
    parts = ident.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        return None
    if not name or scheme not in SCHEMES:
        return None
    return scheme, name, port


def _loopback_allowed() -> bool:
    return os.environ.get("PYK8S_PROXY_ALLOW_LOOPBACK") == "1"


def check_proxyable(ip: str, *, pod: bool = False) -> None:
    """Refuse addresses the proxy must not reach (upstream's IsProxyableIP; a pod's IP
    must moreover be global unicast)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise errors.bad_request("address not allowed") from None
    if addr.is_loopback and _loopback_allowed():
        return
    if (addr.is_loopback or addr.is_link_local or addr.is_unspecified or addr.is_multicast
            or (pod and addr.version == 4 and addr == ipaddress.ip_address(
                "255.255.255.255"))):
        raise errors.bad_request("address not allowed")


def proxy_path(request: web.Request, t: Target) -> str:
    """What follows ``/proxy`` in the raw URL: ``""``, ``"/"`` or ``"/a/b"``."""
    parts = request.raw_path.split("?", 1)[0].split("/")
    # ["", "api", "v1", ("namespaces", ns,) plural, name, "proxy", rest...]
    index = 7 if t.namespace else 5
    rest = parts[index + 1:]
    return "/" + "/".join(rest) if rest else ""


def _port_number(port: str, what: str) -> int:
    try:
        number = int(port)
    except ValueError:
        raise errors.bad_request(f"invalid {what} port {port!r}") from None
    if not 0 < number < 65536:
        raise errors.bad_request(f"invalid {what} port {port!r}")
    return number


async def pod_location(server: "APIServer", t: Target) -> proxying.Location:
    split = split_scheme_name_port(t.name)
    if split is None:
        raise errors.bad_request(f'invalid pod request "{t.name}"')
    scheme, name, port = split
    pod = await server.stores[("", "v1", "pods")].get(t.namespace, name)
    if not port:
        for container in (pod.get("spec") or {}).get("containers") or []:
            if container.get("ports"):
                port = str(container["ports"][0].get("containerPort", ""))
                break
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    ip = ips[0] if ips else status.get("podIP") or ""
    check_proxyable(ip, pod=True)
    scheme = scheme or "http"
    return proxying.Location(scheme, ip, _port_number(port or DEFAULT_PORTS[scheme], "pod"),
                             "")


async def service_location(server: "APIServer", t: Target) -> proxying.Location:
    split = split_scheme_name_port(t.name)
    if split is None:
        raise errors.bad_request(f'invalid service request "{t.name}"')
    scheme, name, port_name = split
    if port_name.isdigit():
        svc = await server.stores[("", "v1", "services")].get(t.namespace, name)
        number = int(port_name)
        found = [p for p in (svc.get("spec") or {}).get("ports") or []
                 if p.get("port") == number]
        if not found:
            raise errors.APIError(503, "ServiceUnavailable",
                                  f'no service port {number} found for service "{name}"')
        port_name = found[0].get("name") or ""
    candidates = []
    for endpoint, port in _ready_endpoints(server, t.namespace, name, port_name):
        for ip in endpoint.get("addresses") or []:
            candidates.append((ip, port, endpoint.get("targetRef") or {}))
    random.shuffle(candidates)
    pods = server.stores[("", "v1", "pods")]
    for ip, port, ref in candidates:
        if await _is_valid_address(pods, t.namespace, ip, ref):
            check_proxyable(ip)
            return proxying.Location(scheme or "http", ip, int(port), "")
    raise errors.APIError(503, "ServiceUnavailable",
                          f'no endpoints available for service "{t.name}"')


def _ready_endpoints(server: "APIServer", namespace: str, service: str, port_name: str):
    """(endpoint, port number) of the Service's EndpointSlices whose port has the name;
    an endpoint without a ``ready`` condition counts as ready, as upstream reads it."""
    from ..registry.generic import prefix_end
    slices = server.stores[("discovery.k8s.io", "v1", "endpointslices")]
    prefix = slices.prefix(namespace)
    for _, eps in slices.cache.items(prefix, prefix_end(prefix)):
        labels = (eps.get("metadata") or {}).get("labels") or {}
        if labels.get(SERVICE_NAME_LABEL) != service:
            continue
        ports = [p for p in eps.get("ports") or [] if (p.get("name") or "") == port_name
                 and p.get("port")]
        for port in ports:
            for endpoint in eps.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is not False:
                    yield endpoint, port["port"]


async def _is_valid_address(pods, namespace: str, ip: str, ref: dict) -> bool:
    """The endpoint's target pod still exists in the namespace and has its IP."""
    if ref.get("kind", "Pod") != "Pod" or not ref.get("name") or \
            ref.get("namespace", namespace) != namespace:
        return False
    try:
        pod = await pods.get(namespace, ref["name"])
    except errors.APIError:
        return False
    status = pod.get("status") or {}
    ips = {p.get("ip") for p in status.get("podIPs") or []} | {status.get("podIP")}
    return ip in ips


async def node_location(server: "APIServer", t: Target) -> proxying.Location:
    split = split_scheme_name_port(t.name)
    if split is None:
        raise errors.bad_request(f'invalid node request "{t.name}"')
    scheme, name, port = split
    node = await server.stores[("", "v1", "nodes")].get("", name)
    host, kubelet_port = kubelet_address(node)
    if not port or port == str(kubelet_port):
        return proxying.Location("https", host, kubelet_port, "",
                                 ssl=server.kubelet_client.ssl_context())
    check_proxyable(host)
    return proxying.Location(scheme or "http", host, _port_number(port, "node"), "")


LOCATORS = {"pods": pod_location, "services": service_location, "nodes": node_location}


async def serve_proxy(server: "APIServer", request: web.Request,
                      t: Target) -> web.StreamResponse:
    if request.method not in PROXY_METHODS:
        raise errors.method_not_allowed(request.method.lower(), f"{t.plural}/proxy", "")
    location = await LOCATORS[t.plural](server, t)
    path = proxy_path(request, t)
    if not path and request.method in ("GET", "HEAD") and not proxying.is_upgrade(request):
        query = request.raw_path.partition("?")[2]
        target = request.raw_path.split("?", 1)[0] + "/" + (f"?{query}" if query else "")
        raise web.HTTPMovedPermanently(target)
    query = request.raw_path.partition("?")[2]
    location = proxying.Location(location.scheme, location.host, location.port, path or "/",
                                 query, ssl=location.ssl)
    if location.scheme == "https" and location.ssl is None:
        location = proxying.Location(location.scheme, location.host, location.port,
                                     location.path, query, ssl=_insecure_context())
    prefix = request.raw_path.split("?", 1)[0]
    if path:
        prefix = prefix[:len(prefix) - len(path)]
    return await proxying.proxy(request, location, prefix=prefix)


def _insecure_context():
    import ssl
    # upstream's proxy transport does not verify backends it reaches by IP
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
