"""The controller manager's clients: its own identity, and one per controller.

Role: upstream's ``k8s.io/controller-manager/pkg/clientbuilder``. ``RootClientBuilder``
(``SimpleControllerClientBuilder``) hands out clients with the controller manager's
own credentials (``system:kube-controller-manager``): leader election, the shared
informers, the events the manager records itself and the ``tokens-controller``.
``ServiceAccountClientBuilder`` (``DynamicControllerClientBuilder``, what
``--use-service-account-credentials`` turns on) gives each controller a client that
authenticates as service account ``kube-system/<name>``: it makes sure the account
exists, asks the TokenRequest API for a bound token (``expirationSeconds`` 3600) with
the root client, and renews it in the background once 80 % of its lifetime has passed
(``defaultLeewayPercent`` 20), so ``system:controller:<name>``'s RBAC rules are all a
controller may do.

Invariants:
- A service-account client carries no client certificate: its TLS context trusts the
  same CA as the root kubeconfig and nothing else (``AnonymousClientConfig``).
- One client (and one token) per account name, however many controllers share it
  (node lifecycle, taint eviction and node IPAM all run as ``node-controller``).
- The first token is fetched before ``client()`` returns, retried with upstream's
  backoff (0.5 s doubling, 4 steps); a failed renewal keeps the current token and
  retries, and a 401 answer renews at once (``ResettableTokenSourceWrapTransport``).
- User agents are upstream's: ``kube-controller-manager/<version> (<os>/<arch>)
  kubernetes/<commit>/<client name>``, the service-account clients named
  ``system:serviceaccount:kube-system:<name>``.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import platform
import ssl
import sys
from typing import Any, Callable

from pyk8s.api import meta as m
from pyk8s.client import ApiError, Client, ClientConfig, is_already_exists, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.clock import REAL_CLOCK, Clock
from pyk8s.client.transport import AiohttpTransport, Request, Response, Transport

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
VERSION = "v1.32.0"
EXPIRATION_SECONDS = 3600          # defaultExpirationSeconds
LEEWAY_PERCENT = 20                # defaultLeewayPercent
MIN_LIFETIME = 600.0               # a shorter answer is clock skew: assume 10 minutes
RETRY_AFTER_FAILURE = 10.0         # a failed renewal is tried again after this
BACKOFF = (0.5, 1.0, 2.0)          # wait.Backoff{500ms, x2, Steps: 4}: 4 tries, 3 waits

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def user_agent(name: str) -> str:
    """``restclient.AddUserAgent(config, name)`` on the default Kubernetes agent."""
    machine = platform.machine().lower()
    return (f"kube-controller-manager/{VERSION} ({sys.platform}/{_ARCH.get(machine, machine)})"
            f" kubernetes/$Format/{name}")


def service_account_username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


_ca_contexts: dict[int, ssl.SSLContext] = {}


def _ca_only(ctx: ssl.SSLContext | None) -> ssl.SSLContext | None:
    """A TLS context trusting what ``ctx`` trusts, without its client certificate."""
    if ctx is None:
        return None
    cached = _ca_contexts.get(id(ctx))
    if cached is not None:
        return cached
    out = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    out.check_hostname = ctx.check_hostname
    out.verify_mode = ctx.verify_mode
    cas = ctx.get_ca_certs(binary_form=True)
    for der in cas:
        out.load_verify_locations(cadata=der)
    if not cas and ctx.verify_mode != ssl.CERT_NONE:
        out.load_default_certs(ssl.Purpose.SERVER_AUTH)
    _ca_contexts[id(ctx)] = out
    return out


def anonymous_config(base: ClientConfig, *, user_agent: str) -> ClientConfig:
    """``restclient.AnonymousClientConfig``: where and how to reach the server, no one."""
    return ClientConfig(server=base.server, ssl_context=_ca_only(base.ssl_context),
                        namespace=base.namespace, tls_server_name=base.tls_server_name,
                        user_agent=user_agent, timeout=base.timeout)


class RootClientBuilder:
    """Clients with the controller manager's own credentials, named by user agent."""

    def __init__(self, config: ClientConfig, *, clock: Clock = REAL_CLOCK):
        self.config = config
        self.clock = clock
        self._clients: dict[str, Client] = {}

    def client_now(self, name: str) -> Client:
        if name not in self._clients:
            cfg = dataclasses.replace(self.config, user_agent=user_agent(name))
            self._clients[name] = Client(cfg, clock=self.clock)
        return self._clients[name]

    async def client(self, name: str) -> Client:
        return self.client_now(name)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.close()


async def get_or_create_service_account(client: Client, namespace: str, name: str) -> dict:
    """``getOrCreateServiceAccount``: the account, created (with its namespace, if that
    is missing and we may create it) when it does not exist."""
    try:
        return await client.get(r.SERVICEACCOUNTS, name, namespace=namespace)
    except ApiError as err:
        if not is_not_found(err):
            raise
    try:
        await client.get(r.NAMESPACES, namespace)
    except ApiError as err:
        if is_not_found(err):
            with contextlib.suppress(ApiError):  # we may not be allowed to: tolerated
                await client.create(r.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": namespace}})
    try:
        return await client.create(r.SERVICEACCOUNTS, {
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace}}, namespace=namespace)
    except ApiError as err:
        if not is_already_exists(err):
            raise
        return await client.get(r.SERVICEACCOUNTS, name, namespace=namespace)


class TokenSource:
    """A service account's bound token, renewed before it expires (``tokenSourceImpl``
    behind a ``CachedTokenSource``); writes it into ``config.token``."""

    def __init__(self, root: Client, config: ClientConfig, *, namespace: str, name: str,
                 expiration_seconds: int = EXPIRATION_SECONDS,
                 leeway_percent: int = LEEWAY_PERCENT, clock: Clock = REAL_CLOCK,
                 backoff: tuple[float, ...] = BACKOFF,
                 retry_after_failure: float = RETRY_AFTER_FAILURE):
        self.root, self.config = root, config
        self.namespace, self.name = namespace, name
        self.expiration_seconds = expiration_seconds
        self.leeway_percent = leeway_percent
        self.clock = clock
        self.backoff = backoff
        self.retry_after_failure = retry_after_failure
        self.renew_at = 0.0            # clock.monotonic() when the token is due
        self.renewals = 0              # tokens fetched so far
        self._reset = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def fetch(self) -> None:
        """A new token now, with upstream's backoff; raises when every try failed."""
        last: BaseException | None = None
        for attempt in range(len(self.backoff) + 1):
            try:
                await get_or_create_service_account(self.root, self.namespace, self.name)
                tr = await self.root.request(
                    "POST", r.SERVICEACCOUNTS.path(self.namespace, self.name, subresource="token"),
                    body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                          "spec": {"expirationSeconds": self.expiration_seconds}})
                break
            except Exception as err:  # noqa: BLE001 - retried, then reported
                last = err
                log.info("token for %s/%s failed: %s", self.namespace, self.name, err)
                if attempt < len(self.backoff):
                    await self.clock.sleep(self.backoff[attempt])
        else:
            raise RuntimeError(f"failed to get token for {self.namespace}/{self.name}: "
                               f"{last}") from last
        status = tr.get("status") or {}
        if not (tr.get("spec") or {}).get("expirationSeconds"):
            raise RuntimeError("nil pointer of expiration in token request")
        lifetime = MIN_LIFETIME
        with contextlib.suppress(KeyError, ValueError, TypeError):
            lifetime = (m.parse_time(status["expirationTimestamp"])
                        - self.clock.now().astimezone(datetime.timezone.utc)).total_seconds()
        lifetime = max(lifetime, MIN_LIFETIME)   # possible clock skew
        self.config.token = status["token"]
        self.renew_at = self.clock.monotonic() + lifetime * (100 - self.leeway_percent) / 100
        self.renewals += 1
        self._reset.clear()

    def reset(self) -> None:
        """The server refused the token (401): renew it now."""
        self._reset.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._renew_loop(),
                                             name=f"token {self.namespace}/{self.name}")

    async def _renew_loop(self) -> None:
        while True:
            delay = max(self.renew_at - self.clock.monotonic(), 0.0)
            sleeper = asyncio.ensure_future(self.clock.sleep(delay))
            reset = asyncio.ensure_future(self._reset.wait())
            try:
                await asyncio.wait([sleeper, reset], return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                reset.cancel()
            try:
                await self.fetch()
                log.debug("renewed the token of %s/%s", self.namespace, self.name)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the current token may still work
                log.warning("renewing the token of %s/%s: %s", self.namespace, self.name, err)
                self._reset.clear()
                self.renew_at = self.clock.monotonic() + self.retry_after_failure

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class _ResettingTransport:
    """Passes requests on; a 401 answer makes the token source renew at once."""

    def __init__(self, inner: Transport, source: TokenSource):
        self.inner, self.source = inner, source

    async def request(self, request: Request) -> Response:
        resp = await self.inner.request(request)
        if resp.status == 401:
            self.source.reset()
        return resp

    @contextlib.asynccontextmanager
    async def stream(self, request: Request):
        async with self.inner.stream(request) as resp:
            if resp.status == 401:
                self.source.reset()
            yield resp

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ServiceAccountClientBuilder:
    """Clients that authenticate as ``kube-system/<name>`` with renewed bound tokens."""

    def __init__(self, root: Client, config: ClientConfig, *, namespace: str = NAMESPACE,
                 expiration_seconds: int = EXPIRATION_SECONDS,
                 leeway_percent: int = LEEWAY_PERCENT, clock: Clock = REAL_CLOCK,
                 transport: Callable[[ClientConfig], Transport] = AiohttpTransport):
        self.root = root
        self.config = config
        self.namespace = namespace
        self.expiration_seconds = expiration_seconds
        self.leeway_percent = leeway_percent
        self.clock = clock
        self.transport = transport
        self.sources: dict[str, TokenSource] = {}
        self._clients: dict[str, Client] = {}
        self._lock = asyncio.Lock()

    async def client(self, name: str) -> Client:
        async with self._lock:
            pending = self._clients.get(name)
        if pending is not None:
            return pending
        username = service_account_username(self.namespace, name)
        cfg = anonymous_config(self.config, user_agent=user_agent(username))
        source = TokenSource(self.root, cfg, namespace=self.namespace, name=name,
                             expiration_seconds=self.expiration_seconds,
                             leeway_percent=self.leeway_percent, clock=self.clock)
        await source.fetch()
        async with self._lock:
            if name in self._clients:  # built meanwhile by another caller
                return self._clients[name]
            source.start()
            client = Client(cfg, transport=_ResettingTransport(self.transport(cfg), source),
                            clock=self.clock)
            self.sources[name] = source
            self._clients[name] = client
        log.info("controller client for %s ready", username)
        return client

    async def close(self) -> None:
        sources, self.sources = list(self.sources.values()), {}
        clients, self._clients = list(self._clients.values()), {}
        for s in sources:
            await s.stop()
        for c in clients:
            await c.close()
