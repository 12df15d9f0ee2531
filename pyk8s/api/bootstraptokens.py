"""Bootstrap tokens (``<id>.<secret>``) and the kube-system Secrets that hold them.

Pure data, no I/O: ``pyk8s token create`` posts ``token_secret`` through the API; the
API server's authenticator (apiserver/authn.py) accepts the token while its Secret
exists, is unexpired and allows ``usage-bootstrap-authentication``. A node joining
with such a token is in ``system:bootstrappers`` and the extra group below, which the
default RBAC lets create and auto-approve its kubelet client CSR, and nothing else.
"""
from __future__ import annotations

import datetime
import re
import secrets

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
DEFAULT_GROUP = "system:bootstrappers:pyk8s:default-node-token"
DEFAULT_TTL = datetime.timedelta(hours=24)
SECRET_TYPE = "bootstrap.kubernetes.io/token"


def new_token() -> str:
    pick = lambda n: "".join(secrets.choice(ALPHABET) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def token_secret(token: str, *, ttl: datetime.timedelta | None = DEFAULT_TTL,
                 groups: tuple[str, ...] = (DEFAULT_GROUP,),
                 usages: tuple[str, ...] = ("authentication", "signing"),
                 description: str = "", now: datetime.datetime | None = None) -> dict:
    """The ``bootstrap-token-<id>`` Secret for ``token`` (no expiry when ``ttl`` is None)."""
    m = TOKEN.match(token)
    if m is None:
        raise ValueError(f"token {token!r} does not match [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    token_id, token_secret_part = m.groups()
    data = {"token-id": token_id, "token-secret": token_secret_part}
    for usage in usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    if description:
        data["description"] = description
    if ttl is not None:
        when = (now or datetime.datetime.now(datetime.timezone.utc)) + ttl
        data["expiration"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "stringData": data}
