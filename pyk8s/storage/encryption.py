"""Encryption at rest (apiserver/pkg/storage/value): an EncryptionConfiguration over any Store.

``EncryptingStore`` wraps a Store and transforms the values of the configured
resources: writes use the first provider listed for the resource, reads use the
provider named by the stored value's prefix (``k8s:enc:aescbc:v1:<key>:``,
``k8s:enc:aesgcm:v1:<key>:``, ``k8s:enc:secretbox:v1:<key>:``) or take it as
plaintext (``identity``), so keys rotate by listing the new key first and rewriting
objects, exactly as upstream's ``apiserver.config.k8s.io/v1`` EncryptionConfiguration.

Formats are upstream's: aescbc is AES-256-CBC with a random 16-byte IV and PKCS#7
padding; aesgcm is AES-GCM with a random 12-byte nonce and the storage key as
additional data; secretbox is NaCl's XSalsa20-Poly1305 with a 24-byte nonce (needs
PyNaCl).

Invariants: keys, revisions, listing order and watch semantics are the inner
store's; only value bytes change. A value no provider can read raises
``StorageError`` from ``get``; in lists and watches it comes back as an
``Unreadable`` value (empty bytes carrying ``read_error``), so one bad object cannot
stop the watch cache from loading the rest, and never returns ciphertext as an object.

Staleness (upstream's ``stale`` from TransformFromStorage): a value read with a
provider other than the first, or stored plaintext while the first provider is not
identity, is stale; ``is_stale`` tells the generic store, which then writes an
update even when the object did not change, so ``kubectl replace`` of every Secret
rewrites them with the new first key.
"""
from __future__ import annotations

import abc
import base64
import os
from typing import AsyncIterator

import yaml
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .interface import Event, KeyNotFound, KeyValue, ListResult, StorageError, Store

PREFIX = b"k8s:enc:"


class Provider(abc.ABC):
    """One key of one algorithm: it writes values as ``prefix + encrypt(value)`` and
    reads the values that carry its prefix. ``context`` is the storage key."""

    algorithm = ""

    def __init__(self, key_name: str, secret: bytes):
        self.key_name = key_name
        self.secret = secret

    @property
    def prefix(self) -> bytes:
        return f"k8s:enc:{self.algorithm}:v1:{self.key_name}:".encode()

    @abc.abstractmethod
    def encrypt(self, data: bytes, context: bytes) -> bytes:
        """The ciphertext of ``data`` (without the prefix)."""

    @abc.abstractmethod
    def decrypt(self, data: bytes, context: bytes) -> bytes:
        """The plaintext of ``data``; raises when the key does not fit."""


class AESCBCProvider(Provider):
    algorithm = "aescbc"

    def encrypt(self, data: bytes, context: bytes) -> bytes:
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        enc = Cipher(algorithms.AES(self.secret), modes.CBC(iv)).encryptor()
        return iv + enc.update(padded) + enc.finalize()

    def decrypt(self, data: bytes, context: bytes) -> bytes:
        if len(data) < 32 or len(data) % 16:
            raise StorageError("aescbc: the stored data is not a whole number of blocks")
        dec = Cipher(algorithms.AES(self.secret), modes.CBC(data[:16])).decryptor()
        padded = dec.update(data[16:]) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()


class AESGCMProvider(Provider):
    algorithm = "aesgcm"

    def encrypt(self, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.secret).encrypt(nonce, data, context)

    def decrypt(self, data: bytes, context: bytes) -> bytes:
        return AESGCM(self.secret).decrypt(data[:12], data[12:], context)


class SecretboxProvider(Provider):
    algorithm = "secretbox"

    def __init__(self, key_name: str, secret: bytes):
        super().__init__(key_name, secret)
        try:
            import nacl.secret
        except ImportError:
            raise StorageError("the secretbox provider needs PyNaCl") from None
        self.box = nacl.secret.SecretBox(secret)

    def encrypt(self, data: bytes, context: bytes) -> bytes:
        return bytes(self.box.encrypt(data))

    def decrypt(self, data: bytes, context: bytes) -> bytes:
        return self.box.decrypt(data)


ALGORITHMS = {"aescbc": AESCBCProvider, "aesgcm": AESGCMProvider,
              "secretbox": SecretboxProvider}
KEY_SIZES = {"aescbc": (16, 24, 32), "aesgcm": (16, 24, 32), "secretbox": (32,)}


class Transformer:
    """The providers for one resource: write with the first, read with any."""

    def __init__(self, providers: list[Provider | None]):
        self.providers = providers  # None stands for identity (plaintext)

    def to_storage(self, value: bytes, key: str) -> bytes:
        first = self.providers[0]
        if first is None:
            return value
        return first.prefix + first.encrypt(value, key.encode())

    def from_storage(self, value: bytes, key: str) -> bytes:
        return self.read(value, key)[0]

    def read(self, value: bytes, key: str) -> tuple[bytes, bool]:
        """(plaintext, stale): stale when not written by the first provider."""
        if not value.startswith(PREFIX):
            if None in self.providers:
                return value, self.providers[0] is not None
            raise StorageError(f"no identity provider to read plaintext value of {key}")
        for i, p in enumerate(self.providers):
            if p is not None and value.startswith(p.prefix):
                try:
                    return p.decrypt(value[len(p.prefix):], key.encode()), i != 0
                except Exception as err:  # a wrong key or a corrupted value
                    raise StorageError(f"{p.algorithm} key {p.key_name} cannot decrypt "
                                       f"{key}: {err}") from None
        if self.providers == [None]:
            raise StorageError("identity transformer tried to read encrypted data")
        raise StorageError(f"no configured key can decrypt {key}")

    def is_stale(self, value: bytes) -> bool:
        """Whether a stored value was not written by the first provider."""
        first = self.providers[0]
        if first is None:
            return value.startswith(PREFIX)
        return not value.startswith(first.prefix)


class Unreadable(bytes):
    """A listed or watched value no configured provider could read: empty bytes
    carrying the reason (the watch cache keeps the key as unreadable, so a GET of it
    answers 500 InternalError and lists of its resource fail, as upstream)."""

    read_error: str

    def __new__(cls, error: str) -> "Unreadable":
        obj = super().__new__(cls, b"")
        obj.read_error = error
        return obj


def _resource_prefix(resource: str) -> str:
    """``secrets`` -> /registry/core/secrets/, ``deployments.apps`` ->
    /registry/apps/deployments/, ``*.apps`` -> /registry/apps/, ``*.*`` -> /registry/."""
    plural, _, group = resource.partition(".")
    if plural == "*" and group == "*":
        return "/registry/"
    if plural == "*":
        return f"/registry/{group or 'core'}/"
    return f"/registry/{group or 'core'}/{plural}/"


def load_config(doc: dict) -> list[tuple[str, Transformer]]:
    """(key prefix, transformer) pairs from an EncryptionConfiguration, most specific first."""
    if doc.get("kind") != "EncryptionConfiguration":
        raise StorageError("encryption config: kind must be EncryptionConfiguration")
    out = []
    for entry in doc.get("resources") or []:
        providers: list[Provider | None] = []
        for spec in entry.get("providers") or []:
            (algorithm, settings), = spec.items()
            if algorithm == "identity":
                providers.append(None)
                continue
            if algorithm not in ALGORITHMS:
                raise StorageError(f"encryption config: unsupported provider {algorithm!r}")
            for k in (settings or {}).get("keys") or []:
                secret = base64.b64decode(k["secret"])
                if len(secret) not in KEY_SIZES[algorithm]:
                    raise StorageError(f"encryption config: {algorithm} key {k['name']!r} "
                                       f"has {len(secret)} bytes")
                providers.append(ALGORITHMS[algorithm](k["name"], secret))
        if not providers:
            raise StorageError("encryption config: a resource needs at least one provider")
        transformer = Transformer(providers)
        for resource in entry.get("resources") or []:
            out.append((_resource_prefix(resource), transformer))
    return sorted(out, key=lambda item: -len(item[0]))


class EncryptingStore:
    """A Store whose configured resources are encrypted at rest."""

    def __init__(self, inner: Store, rules: list[tuple[str, Transformer]]):
        self.inner = inner
        self.rules = rules

    @classmethod
    def from_file(cls, inner: Store, path: str) -> "EncryptingStore":
        with open(path) as f:
            return cls(inner, load_config(yaml.safe_load(f) or {}))

    def _transformer(self, key: str) -> Transformer | None:
        for prefix, transformer in self.rules:
            if key.startswith(prefix):
                return transformer
        return None

    def _out(self, key: str, value: bytes) -> bytes:
        t = self._transformer(key)
        return value if t is None else t.to_storage(value, key)

    def _in(self, key: str, value: bytes) -> bytes:
        t = self._transformer(key)
        return value if t is None or not value else t.from_storage(value, key)

    def _kv(self, kv: KeyValue) -> KeyValue:
        return KeyValue(kv.key, self._in(kv.key, kv.value), kv.revision)

    def _kv_or_unreadable(self, kv: KeyValue) -> KeyValue:
        try:
            return self._kv(kv)
        except StorageError as err:
            return KeyValue(kv.key, Unreadable(str(err)), kv.revision)

    def _in_or_unreadable(self, key: str, value: bytes) -> bytes:
        try:
            return self._in(key, value)
        except StorageError as err:
            return Unreadable(str(err))

    async def is_stale(self, key: str, revision: int) -> bool:
        """Whether the stored value of ``key`` at ``revision`` should be rewritten
        because the first provider did not write it (a newer revision counts as
        stale: the caller's write then conflicts and rereads)."""
        t = self._transformer(key)
        if t is None:
            return False
        try:
            kv = await self.inner.get(key)
        except KeyNotFound:
            return True  # the write then answers NotFound
        if kv.revision != revision:
            return True
        return t.is_stale(kv.value)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def create(self, key: str, value: bytes) -> int:
        return await self.inner.create(key, self._out(key, value))

    async def get(self, key: str) -> KeyValue:
        return self._kv(await self.inner.get(key))

    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "",
                   limit: int = 0) -> ListResult:
        res = await self.inner.list(prefix, revision=revision, start_after=start_after,
                                    limit=limit)
        return ListResult([self._kv_or_unreadable(kv) for kv in res.items], res.revision,
                          res.more)

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> int:
        return await self.inner.update(key, self._out(key, value),
                                       expected_revision=expected_revision)

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        return self._kv(await self.inner.delete(key, expected_revision=expected_revision))

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compacted_revision(self) -> int:
        return await self.inner.compacted_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def watch(self, prefix: str, *, revision: int) -> AsyncIterator[Event]:
        async for ev in self.inner.watch(prefix, revision=revision):
            prev = self._in_or_unreadable(ev.key, ev.prev_value) if ev.prev_value \
                else ev.prev_value
            yield Event(ev.type, ev.key, self._in_or_unreadable(ev.key, ev.value),
                        ev.revision, prev)

    def __getattr__(self, name: str):
        # Backend-specific extras (e.g. a SQLite path) stay reachable.
        return getattr(self.inner, name)
