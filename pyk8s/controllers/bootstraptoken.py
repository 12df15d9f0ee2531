"""Deletes expired bootstrap tokens.

Role: upstream's ``token-cleaner-controller`` (``pkg/controller/bootstrap/
tokencleaner.go``): Secrets of type ``bootstrap.kubernetes.io/token`` in
``kube-system`` whose ``expiration`` (RFC 3339) has passed are deleted; the others
are looked at again when they expire.

Invariants:
- An unparsable expiration counts as expired (as upstream's ``GetExpiration``); a
  token without one never expires.
- Deletes carry the Secret's uid as a precondition.
"""
from __future__ import annotations

import base64
import datetime
import logging

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from .corecontext import ControllerContext, CoreController

log = logging.getLogger(__name__)

TOKEN_TYPE = "bootstrap.kubernetes.io/token"
TOKEN_NAMESPACE = "kube-system"


def expiration(secret: dict, now: datetime.datetime) -> tuple[float, bool]:
    """(seconds to live, already expired) as ``bootstrapsecretutil.GetExpiration``."""
    raw = (secret.get("data") or {}).get("expiration")
    if not raw:
        return 0.0, False
    try:
        text = base64.b64decode(raw).decode()
        when = m.parse_time(text)
        if when.tzinfo is None:
            raise ValueError("no time zone")
    except (ValueError, UnicodeDecodeError):
        log.info("unparseable expiration time in %s Secret; treating as expired",
                 m.object_key(secret))
        return 0.0, True
    ttl = (when - now).total_seconds()
    if ttl <= 0:
        return 0.0, True
    return ttl, False


class TokenCleaner(CoreController):
    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="token-cleaner-controller", workers=1)
        self.secrets = self.informer(r.SECRETS, namespace=TOKEN_NAMESPACE,
                                     field_selector=f"type={TOKEN_TYPE}")
        self.secrets.add_event_handler(on_add=self.enqueue,
                                       on_update=lambda o, n: self.enqueue(n))

    async def sync(self, key: str) -> None:
        secret = self.secrets.store.get(key)
        if secret is None or secret.get("type") != TOKEN_TYPE:
            return
        ttl, expired = expiration(secret, self.now())
        if not expired:
            if ttl > 0:
                raise Requeue(ttl)
            return
        md = secret["metadata"]
        log.info("deleting expired bootstrap token %s", key)
        try:
            await self.client.delete(r.SECRETS, md["name"], namespace=md["namespace"],
                                     preconditions={"uid": md["uid"]})
        except ApiError as err:
            if not is_not_found(err):
                raise


def new_token_cleaner(ctx: ControllerContext) -> TokenCleaner:
    return TokenCleaner(ctx)
