"""Kubelet client certificate rotation: upstream's certificate manager
(k8s.io/client-go/util/certificate/certificate_manager.go) for the node identity.

Role: while the kubelet runs, renew its ``system:node:<name>`` client certificate
before it expires, authenticating with the current one: a new P-256 key, a CSR with
signer ``kubernetes.io/kube-apiserver-client-kubelet`` (CN ``system:node:<name>``,
O ``system:nodes``), which the cluster's approver accepts as a ``selfnodeclient``
renewal and the signer issues; the new pair goes into the kubeconfig and into the
live client's ``SSLContext``.

Invariants:
- The rotation deadline is notBefore + a jittered 70–90 % of the certificate's
  lifetime (``jitteryDuration``); a certificate past its deadline is renewed at once.
  ``force()`` rotates now (tests, operators).
- A failed attempt is retried with back-off: 2, 4, 8, 16 s, then every 32 s (upstream's
  ExponentialBackoff of 5 steps, then PollInfinite(32 s)), each with 10 % jitter.
- The kubeconfig is replaced atomically (0600) before the client switches; the
  client then loads the new pair into its ``SSLContext`` and drops its pooled
  connections, so every new handshake presents the new certificate.
- Once the current certificate has expired and an attempt failed, ``run`` raises
  ``CertificateExpired``: the node stops with a message instead of running without
  an identity, and its next start bootstraps again with a join token (bootstrap.py).
- Time (deadline, back-off) comes from the injected ``Clock``; waiting for the
  CSR to be issued is real time (the API server's approver and signer).
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import random
from typing import Callable

from cryptography import x509

from ..client.clock import REAL_CLOCK, Clock
from ..client.config import load_cert_chain
from . import bootstrap

log = logging.getLogger(__name__)

WAIT_TIMEOUT = 15 * 60.0      # certificateWaitTimeout
BACKOFF_INITIAL = 2.0
BACKOFF_STEPS = 5
BACKOFF_MAX = 32.0
BACKOFF_JITTER = 0.1
MAX_SLEEP = 3600.0            # re-read the wall clock at least hourly (suspend, NTP steps)


class CertificateExpired(RuntimeError):
    """The node's client certificate expired and could not be renewed."""


def rotation_deadline(cert: x509.Certificate,
                      rand: Callable[[], float] = random.random) -> datetime.datetime:
    """notBefore + (70 % + 20 % · rand) of the lifetime: 70–90 %, as upstream."""
    begin, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return begin + (end - begin) * (0.7 + 0.2 * rand())


def backoff_delays(rand: Callable[[], float] = random.random):
    """2, 4, 8, 16 s, then 32 s forever; each stretched by up to 10 %."""
    delay, step = BACKOFF_INITIAL, 0
    while True:
        yield delay * (1 + BACKOFF_JITTER * rand())
        step += 1
        delay = BACKOFF_MAX if step >= BACKOFF_STEPS - 1 else delay * 2


class CertificateRotator:
    """Keeps ``client``'s node certificate (from ``kubeconfig``) renewed."""

    def __init__(self, client, *, kubeconfig: str, node: str, clock: Clock = REAL_CLOCK,
                 rand: Callable[[], float] = random.random,
                 wait_timeout: float = WAIT_TIMEOUT):
        self.client = client
        self.kubeconfig = kubeconfig
        self.node = node
        self.clock = clock
        self.rand = rand
        self.wait_timeout = wait_timeout
        self.cert = bootstrap.node_certificate(kubeconfig, node)
        if self.cert is None:
            raise ValueError(f"{kubeconfig} holds no certificate of system:node:{node}")
        self.deadline = rotation_deadline(self.cert, rand)
        self.rotations = 0
        self.last_error: BaseException | None = None
        self._force = asyncio.Event()
        self._rotated = asyncio.Condition()

    @classmethod
    def for_kubeconfig(cls, client, kubeconfig: str | None, node: str,
                       **kwargs) -> "CertificateRotator | None":
        """A rotator when ``kubeconfig`` authenticates as this node by certificate,
        else None (an admin or token kubeconfig is not the kubelet's to renew)."""
        if not kubeconfig or getattr(getattr(client, "config", None), "ssl_context",
                                     None) is None:
            return None
        if bootstrap.node_certificate(kubeconfig, node) is None:
            log.info("client certificate rotation is off: %s does not hold a certificate "
                     "of system:node:%s", kubeconfig, node)
            return None
        return cls(client, kubeconfig=kubeconfig, node=node, **kwargs)

    def force(self) -> None:
        """Rotate now, whatever the deadline."""
        self._force.set()

    async def wait_rotated(self, count: int) -> None:
        """Until at least ``count`` rotations happened since the start."""
        async with self._rotated:
            await self._rotated.wait_for(lambda: self.rotations >= count)

    async def run(self) -> None:
        log.info("client certificate rotation is on for system:node:%s: certificate "
                 "expires %s, rotation deadline %s", self.node,
                 self.cert.not_valid_after_utc, self.deadline)
        while True:
            await self._wait_for_deadline()
            delays = backoff_delays(self.rand)
            while True:
                try:
                    await self.rotate()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 - every failure is retried
                    self.last_error = err
                    if self.clock.now() >= self.cert.not_valid_after_utc:
                        raise CertificateExpired(
                            f"the client certificate of system:node:{self.node} expired at "
                            f"{self.cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ} and could "
                            f"not be renewed: {err}; start the node again with a join "
                            "token (`pyk8s token create`)") from err
                    delay = next(delays)
                    log.warning("rotating the client certificate of system:node:%s failed "
                                "(retrying in %.0f s): %s", self.node, delay, err)
                    await self.clock.sleep(delay)

    async def _wait_for_deadline(self) -> None:
        while not self._force.is_set():
            remaining = (self.deadline - self.clock.now()).total_seconds()
            if remaining <= 0:
                break
            sleeper = asyncio.ensure_future(self.clock.sleep(min(remaining, MAX_SLEEP)))
            forced = asyncio.ensure_future(self._force.wait())
            try:
                await asyncio.wait({sleeper, forced}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                forced.cancel()
        self._force.clear()

    async def rotate(self) -> x509.Certificate:
        """One rotation: CSR as the current identity, wait, store, switch the client."""
        log.info("rotating the client certificate of system:node:%s", self.node)
        cert_pem, key_pem = await bootstrap.request_certificate(
            self.client, self.node, timeout=self.wait_timeout)
        await asyncio.to_thread(bootstrap.store_credentials, self.kubeconfig, cert_pem, key_pem)
        load_cert_chain(self.client.config.ssl_context, cert=cert_pem, key=key_pem)
        close = getattr(self.client.transport, "close_connections", None)
        if close is not None:
            await close()
        cert = x509.load_pem_x509_certificate(cert_pem)
        self.cert = cert
        self.deadline = rotation_deadline(cert, self.rand)
        self.last_error = None
        log.info("rotated the client certificate of system:node:%s: serial %x, expires %s, "
                 "next rotation %s", self.node, cert.serial_number, cert.not_valid_after_utc,
                 self.deadline)
        async with self._rotated:
            self.rotations += 1
            self._rotated.notify_all()
        return cert
