"""Encryption at rest: Secrets are unreadable in the SQLite file (and etcd), readable
through the store, and keys rotate as with upstream's EncryptionConfiguration."""
import base64
import os

import pytest

from pyk8s.storage import StorageError
from pyk8s.storage.encryption import EncryptingStore, load_config

SECRET_KEY = "/registry/core/secrets/default/db"
PLAIN = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="},"metadata":{"name":"db"}}'


def config(*providers) -> dict:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": ["secrets"], "providers": list(providers)}]}


def key(name: str, size: int = 32) -> dict:
    return {"name": name, "secret": base64.b64encode(os.urandom(size)).decode()}


@pytest.mark.parametrize("algorithm", ["aescbc", "aesgcm", "secretbox"])
async def test_secrets_are_encrypted_at_rest(store, tmp_path, algorithm):
    enc = EncryptingStore(store, load_config(config({algorithm: {"keys": [key("k1")]}},
                                                    {"identity": {}})))
    await enc.create(SECRET_KEY, PLAIN)
    await enc.create("/registry/core/configmaps/default/c", b'{"data":{"x":"plain"}}')
    raw = await store.get(SECRET_KEY)
    assert raw.value.startswith(f"k8s:enc:{algorithm}:v1:k1:".encode())
    assert b"aHVudGVyMg==" not in raw.value and b"password" not in raw.value
    assert (await enc.get(SECRET_KEY)).value == PLAIN
    assert (await store.get("/registry/core/configmaps/default/c")).value == \
        b'{"data":{"x":"plain"}}'
    listed = await enc.list("/registry/core/secrets/")
    assert [kv.value for kv in listed.items] == [PLAIN]
    db = getattr(store, "path", None)
    if db:
        with open(db, "rb") as f:
            assert b"aHVudGVyMg==" not in f.read()


async def test_watch_sees_plaintext(store):
    enc = EncryptingStore(store, load_config(config({"aesgcm": {"keys": [key("k1")]}})))
    rev = await store.current_revision()
    await enc.create(SECRET_KEY, PLAIN)
    async for ev in enc.watch("/registry/core/secrets/", revision=rev):
        assert ev.value == PLAIN
        break


async def test_key_rotation_and_wrong_keys(store):
    old, new = key("old"), key("new")
    await EncryptingStore(store, load_config(config({"aescbc": {"keys": [old]}}))).create(
        SECRET_KEY, PLAIN)
    rotated = EncryptingStore(store, load_config(config({"aescbc": {"keys": [new, old]}})))
    kv = await rotated.get(SECRET_KEY)
    assert kv.value == PLAIN
    await rotated.update(SECRET_KEY, kv.value, expected_revision=kv.revision)
    assert (await store.get(SECRET_KEY)).value.startswith(b"k8s:enc:aescbc:v1:new:")
    stranger = EncryptingStore(store, load_config(config({"aescbc": {"keys": [key("old")]}})))
    with pytest.raises(StorageError):
        await stranger.get(SECRET_KEY)
    plain_only = EncryptingStore(store, load_config(config({"identity": {}})))
    with pytest.raises(StorageError):
        await plain_only.get(SECRET_KEY)


def test_bad_configurations_are_refused():
    with pytest.raises(StorageError):
        load_config({"kind": "Other"})
    with pytest.raises(StorageError):
        load_config(config({"aescbc": {"keys": [key("short", 7)]}}))
    with pytest.raises(StorageError):
        load_config(config({"kms": {}}))
