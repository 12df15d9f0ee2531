"""The one generic store: create/get/list/update/patch/delete/watch for every resource.

A resource brings only a Strategy (strategy.py). The hook order is written once:
create = decode → prepare_for_create → defaults → validate → admit → meta → store;
update = read → transform (PUT body, patch, status) → prepare_for_update → defaults →
validate_update → admit → compare-and-swap (retried when the client gave no
resourceVersion).

Invariants:
- the stored JSON never carries ``resourceVersion``; it is the store revision,
  stamped on read (watchcache.decode), so it can never disagree with the store;
- an update that changes nothing is not written (no new revision), as upstream;
- an object with ``deletionTimestamp`` and no finalizers left is deleted by the
  update that removed the last finalizer.
"""
from __future__ import annotations

import base64
import copy
import dataclasses
import random
from typing import Any, Callable

import orjson

from ..api import managedfields
from ..api import meta as metautil
from ..api import errors
from .watchcache import ResourceCache, WatchCache
from ..storage import Conflict, KeyExists, KeyNotFound, KeyValue, Store
from ..storage.interface import prefix_end
from .catalogue import ResourceInfo
from .strategy import Strategy

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
Transform = Callable[[dict], dict]


@dataclasses.dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Strict"  # Strict | Warn | Ignore
    field_manager: str = ""
    user_agent: str = ""  # names the manager when fieldManager is absent
    server_side_apply: bool = False  # apply set managedFields itself
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DeleteOptions:
    grace_period: int | None = None
    propagation: str | None = None  # Background | Foreground | Orphan
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False


def dumps(obj: dict) -> bytes:
    meta = obj.get("metadata")
    if meta and "resourceVersion" in meta:
        obj = dict(obj, metadata={k: v for k, v in meta.items() if k != "resourceVersion"})
    return orjson.dumps(obj)


def object_key(info: ResourceInfo, namespace: str, name: str) -> str:
    base = f"/registry/{info.group or 'core'}/{info.plural}/"
    return base + (f"{namespace}/{name}" if info.namespaced else name)


def resource_prefix(info: ResourceInfo, namespace: str = "") -> str:
    base = f"/registry/{info.group or 'core'}/{info.plural}/"
    return base + (f"{namespace}/" if info.namespaced and namespace else "")


def decode_stored(kv: KeyValue) -> dict:
    obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.revision)
    return obj


__all__ = ["GenericStore", "WriteOptions", "DeleteOptions", "prefix_end", "decode_stored"]


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class GenericStore:
    """CRUD and watch for one resource (all its served versions share it)."""

    def __init__(self, info: ResourceInfo, store: Store, cache: WatchCache,
                 strategy: Strategy, *, admit=None):
        self.info = info
        self.store = store
        self.watchcache = cache
        self.strategy = strategy
        self.admit = admit  # async (operation, obj, old, store) -> None, may raise APIError
        self.printer_columns: list[dict] | None = None  # CRD additionalPrinterColumns
        self.served_api_version = strategy.api_version
        self.served_kind = strategy.kind

    def prefix(self, namespace: str = "") -> str:
        """The key prefix of this resource's objects (in one namespace, if given)."""
        return resource_prefix(self.info, namespace)

    def present(self, obj: dict) -> dict:
        """The object as this version serves it (versions of a CRD differ only in
        apiVersion: conversion strategy None), with upstream's
        ``creationTimestamp: null`` in embedded pod/job templates and the zero values
        its Go status struct always marshals (`ZERO_STATUS`)."""
        if obj.get("apiVersion") != self.strategy.api_version:
            obj = dict(obj, apiVersion=self.strategy.api_version)
        obj = with_zero_status(obj, self.strategy.api_version, self.strategy.kind)
        paths = TEMPLATE_PATHS.get((self.info.group, self.info.kind))
        return with_null_template_timestamps(obj, paths) if paths else obj

    @property
    def cache(self) -> ResourceCache:
        return self.watchcache.cache(resource_prefix(self.info))

    # -- helpers -------------------------------------------------------------------

    def key(self, namespace: str, name: str) -> str:
        return object_key(self.info, namespace, name)

    def not_found(self, name: str) -> errors.APIError:
        return errors.not_found(self.info.plural, self.info.group, name)

    def _conflict(self, name: str) -> errors.APIError:
        return errors.conflict(self.info.plural, self.info.group, name, errors.MODIFIED)

    def _check_kind(self, obj: dict) -> None:
        kind = obj.get("kind")
        want = self.strategy.kind
        if kind and kind != want:
            raise errors.bad_request(
                f"the API version in the data ({obj.get('apiVersion', '')}) does not match "
                f"the expected API version ({self.strategy.api_version})"
                if obj.get("apiVersion") and obj.get("apiVersion") != self.strategy.api_version
                else f"Object kind \"{kind}\" does not match the expected kind \"{want}\"")

    def _invalid(self, name: str, causes: list[dict]) -> errors.APIError:
        return errors.invalid(self.strategy.kind, self.info.group, name, causes)

    def _track(self, old: dict | None, new: dict, opts: WriteOptions,
               subresource: str) -> None:
        """Record the writer's fields in managedFields, as upstream's field manager."""
        if opts.server_side_apply or subresource == "binding":
            return  # apply set them itself; a binding is not a write of the pod's fields
        managedfields.track_update(
            old, new,
            manager=managedfields.manager_or_user_agent(opts.field_manager,
                                                        opts.user_agent),
            api_version=self.strategy.api_version, subresource=subresource,
            schema=managedfields.field_types(self.info.group, self.strategy.version,
                                             self.strategy.kind,
                                             getattr(self.strategy, "schema", None)),
            has_status=self.strategy.has_status)

    # -- reads ---------------------------------------------------------------------

    async def get(self, namespace: str, name: str) -> dict:
        await self.watchcache.sync()
        obj = self.cache.objects.get(self.key(namespace, name))
        if obj is None:
            self.cache.check_readable(self.key(namespace, name))  # 500 for unreadable data
            raise self.not_found(name)
        return obj

    async def read_latest(self, namespace: str, name: str) -> tuple[dict, int]:
        """The newest stored object and its revision, straight from the store."""
        try:
            kv = await self.store.get(self.key(namespace, name))
        except KeyNotFound:
            raise self.not_found(name) from None
        return decode_stored(kv), kv.revision

    # -- create --------------------------------------------------------------------

    async def create(self, namespace: str, obj: dict, opts: WriteOptions) -> dict:
        self._check_kind(obj)
        obj["apiVersion"], obj["kind"] = self.strategy.api_version, self.strategy.kind
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        self._set_namespace(meta, namespace)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choices(_NAME_CHARS, k=5))
        name = meta.get("name", "")
        for k in ("resourceVersion", "selfLink", "deletionTimestamp",
                  "deletionGracePeriodSeconds"):
            meta.pop(k, None)
        meta["uid"] = metautil.new_uid()
        meta["creationTimestamp"] = metautil.now()
        self.strategy.prepare_for_create(obj)
        self._validate_schema(obj, name, opts)
        self.strategy.default(obj)
        self._track(None, obj, opts, "")
        causes = self.strategy.validate(obj, None)
        if causes:
            raise self._invalid(name, causes)
        if self.strategy.has_generation:
            meta["generation"] = 1
        if self.admit is not None:
            await self.admit("CREATE", obj, None, self)
        self.strategy.after_admission(obj, None)
        if opts.dry_run:
            return obj
        await self.strategy.allocate(obj, None, self)
        try:
            rev = await self.store.create(self.key(namespace, name), dumps(obj))
        except KeyExists:
            await self.strategy.release(obj, self)
            raise errors.already_exists(self.info.plural, self.info.group, name) from None
        meta["resourceVersion"] = str(rev)
        return obj

    def _set_namespace(self, meta: dict, namespace: str) -> None:
        if self.info.namespaced:
            given = meta.get("namespace")
            if given and given != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace "
                    "sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)

    def _validate_schema(self, obj: dict, name: str, opts: WriteOptions) -> None:
        type_errors, causes, unknown = self.strategy.check_schema(obj)
        if type_errors:
            kind, version = self.strategy.kind, self.strategy.version
            raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a '
                                     f'{kind}: {type_errors[0]}')
        if causes:
            raise self._invalid(name, causes)
        if unknown:
            if opts.field_validation == "Strict":
                msg = ", ".join(f'unknown field "{f}"' for f in unknown)
                raise errors.bad_request(f"strict decoding error: {msg}")
            if opts.field_validation == "Warn":
                opts.warnings.extend(f'unknown field "{f}"' for f in unknown)
            self.strategy.prune(obj, unknown)

    # -- update / patch ------------------------------------------------------------

    async def update(self, namespace: str, name: str, body: dict, opts: WriteOptions, *,
                     subresource: str = "") -> tuple[dict, bool]:
        """PUT. Returns (object, created)."""
        self._check_kind(body)
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") and body_meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({body_meta['name']}) does not match the name on "
                f"the URL ({name})")
        if self.info.namespaced and body_meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request")
        want_rv = str(body_meta.get("resourceVersion") or "")
        if want_rv and not subresource:
            self._validate_schema(body, name, opts)

        def transform(old: dict) -> dict:
            new = copy.deepcopy(body)
            new.setdefault("metadata", {})
            return new

        try:
            return await self._guaranteed_update(namespace, name, transform, opts,
                                                 subresource=subresource,
                                                 precondition_rv=want_rv), False
        except errors.APIError as err:
            if (err.code != 404 or subresource or not self.strategy.allow_create_on_update
                    or want_rv):
                raise
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})["name"] = name
        return await self.create(namespace, body, opts), True

    async def patch(self, namespace: str, name: str, apply_patch: Transform,
                    opts: WriteOptions, *, subresource: str = "") -> dict:
        return await self._guaranteed_update(namespace, name, apply_patch, opts,
                                             subresource=subresource, precondition_rv="",
                                             patch=True)

    async def _guaranteed_update(self, namespace: str, name: str, transform: Transform,
                                 opts: WriteOptions, *, subresource: str,
                                 precondition_rv: str, patch: bool = False) -> dict:
        key = self.key(namespace, name)
        for _ in range(100):
            old, rev = await self.read_latest(namespace, name)
            new = transform(copy.deepcopy(old))
            if patch:
                self._check_kind(new)
                new_rv = str((new.get("metadata") or {}).get("resourceVersion") or "")
                if new_rv and new_rv != str(rev):
                    raise self._conflict(name)
            elif precondition_rv and precondition_rv != str(rev):
                raise self._conflict(name)
            new = self._merge_for_update(new, old, subresource)
            if patch and not subresource:
                self._validate_schema(new, name, opts)
            self.strategy.default(new)
            self._bump_generation(new, old)
            self._track(old, new, opts, subresource)
            causes = self.strategy.validate(new, old, subresource=subresource)
            if causes:
                raise self._invalid(name, causes)
            if self.admit is not None:
                await self.admit("UPDATE", new, old, self)
            self.strategy.after_admission(new, old)
            new["metadata"]["resourceVersion"] = str(rev)
            if new == old:
                # Unchanged, but still written when the stored value is stale (read
                # with a non-primary encryption provider), as upstream's etcd3 store.
                is_stale = getattr(self.store, "is_stale", None)
                if is_stale is None or not await is_stale(key, rev):
                    return old
            if opts.dry_run:
                return new
            meta = new["metadata"]
            if meta.get("deletionTimestamp") and not meta.get("finalizers") and \
                    not self.strategy.needs_finalizing(new):
                deleted = await self._delete_now(namespace, name, new, rev)
                if deleted is not None:
                    return deleted
                continue
            await self.strategy.allocate(new, old, self)
            try:
                new_rev = await self.store.update(key, dumps(new), expected_revision=rev)
            except Conflict:
                await self.strategy.release_new(new, old, self)
                if precondition_rv:
                    raise self._conflict(name) from None
                continue
            except KeyNotFound:
                raise self.not_found(name) from None
            await self.strategy.release_old(new, old, self)
            meta["resourceVersion"] = str(new_rev)
            return new
        raise self._conflict(name)

    def _merge_for_update(self, new: dict, old: dict, subresource: str) -> dict:
        new["apiVersion"], new["kind"] = self.strategy.api_version, self.strategy.kind
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
            raise errors.conflict(
                self.info.plural, self.info.group, old_meta["name"],
                f"Precondition failed: UID in precondition: {meta['uid']}, "
                f"UID in object meta: {old_meta.get('uid')}")
        if subresource == "status":
            out = copy.deepcopy(old)
            if "status" in new:
                out["status"] = new["status"]
            else:
                out.pop("status", None)
            # A status write may only change managedFields among the metadata.
            if "managedFields" in meta:
                out["metadata"]["managedFields"] = meta["managedFields"]
            else:
                out["metadata"].pop("managedFields", None)
            return out
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation", "selfLink"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        if not self.info.namespaced:
            meta.pop("namespace", None)
        if self.strategy.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        self.strategy.prepare_for_update(new, old, subresource=subresource)
        return new

    def _bump_generation(self, new: dict, old: dict) -> None:
        if not self.strategy.has_generation:
            return
        gen = old["metadata"].get("generation", 1)
        if _spec_part(new) != _spec_part(old):
            gen += 1
        new["metadata"]["generation"] = gen

    # -- delete --------------------------------------------------------------------

    async def delete(self, namespace: str, name: str, opts: DeleteOptions) -> tuple[dict, bool]:
        """Returns (object, deleted_now): deleted_now is False when the object stays
        (graceful deletion or finalizers)."""
        for _ in range(100):
            old, rev = await self.read_latest(namespace, name)
            meta = old["metadata"]
            # As upstream's rest.BeforeDelete, which names the Kind, not the resource.
            if opts.precondition_uid and opts.precondition_uid != meta.get("uid"):
                raise errors.conflict(
                    self.strategy.kind, self.info.group, name,
                    f"the UID in the precondition ({opts.precondition_uid}) does not match "
                    f"the UID in record ({meta.get('uid')}). The object might have been "
                    "deleted and then recreated")
            if opts.precondition_rv and opts.precondition_rv != str(rev):
                raise errors.conflict(
                    self.strategy.kind, self.info.group, name,
                    f"the ResourceVersion in the precondition ({opts.precondition_rv}) does "
                    f"not match the ResourceVersion in record ({rev}). The object might have "
                    "been modified")
            if self.admit is not None:
                await self.admit("DELETE", None, old, self)
            new = copy.deepcopy(old)
            nmeta = new["metadata"]
            finalizers = list(nmeta.get("finalizers") or [])
            policy = opts.propagation or self.strategy.default_propagation
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            grace = self.strategy.grace_period(old, opts.grace_period)
            if not finalizers and grace == 0 and not self.strategy.needs_finalizing(old):
                if opts.dry_run:
                    return old, True
                deleted = await self._delete_now(namespace, name, old, rev)
                if deleted is None:
                    continue
                return deleted, True
            if nmeta.get("deletionTimestamp"):
                # Deletion already in progress: only a shorter grace period changes it.
                current = nmeta.get("deletionGracePeriodSeconds")
                if current is None or grace >= current:
                    if finalizers == list(nmeta.get("finalizers") or []):
                        return old, False
                else:
                    nmeta["deletionGracePeriodSeconds"] = grace
                    nmeta["deletionTimestamp"] = metautil.now(offset=grace)
            else:
                nmeta["deletionTimestamp"] = metautil.now(offset=grace)
                nmeta["deletionGracePeriodSeconds"] = grace
                self.strategy.mark_deleting(new)
                if self.strategy.has_generation:
                    nmeta["generation"] = nmeta.get("generation", 1) + 1
            if finalizers:
                nmeta["finalizers"] = finalizers
            if opts.dry_run:
                return new, False
            try:
                new_rev = await self.store.update(self.key(namespace, name), dumps(new),
                                                  expected_revision=rev)
            except Conflict:
                continue
            except KeyNotFound:
                raise self.not_found(name) from None
            nmeta["resourceVersion"] = str(new_rev)
            return new, False
        raise self._conflict(name)

    async def _delete_now(self, namespace: str, name: str, obj: dict, rev: int) -> dict | None:
        """Delete at ``rev``; None when the object changed meanwhile (caller retries)."""
        try:
            kv = await self.store.delete(self.key(namespace, name), expected_revision=rev)
        except Conflict:
            return None
        except KeyNotFound:
            raise self.not_found(name) from None
        await self.strategy.release(obj, self)
        out = copy.deepcopy(obj)
        out["metadata"]["resourceVersion"] = str(kv.revision)
        return out


# Embedded templates whose ObjectMeta upstream serializes from a zero Go struct: its
# zero metav1.Time marshals as ``null``, so v1.32 shows
# ``metadata: {creationTimestamp: null}`` in every pod (and job) template.
_POD_TEMPLATE = (("spec", "template"),)
TEMPLATE_PATHS: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    ("apps", "Deployment"): _POD_TEMPLATE, ("apps", "ReplicaSet"): _POD_TEMPLATE,
    ("apps", "StatefulSet"): _POD_TEMPLATE, ("apps", "DaemonSet"): _POD_TEMPLATE,
    ("batch", "Job"): _POD_TEMPLATE, ("", "ReplicationController"): _POD_TEMPLATE,
    ("batch", "CronJob"): (("spec", "jobTemplate"), ("spec", "jobTemplate", "spec", "template")),
    ("", "PodTemplate"): (("template",),),
}


# What a kind's status marshals as before anyone wrote it: upstream's status field is a
# Go struct (never omitted, so at least ``status: {}``) and some of its fields carry no
# omitempty, so they show as zeros. Clients rely on it: the official Python client
# refuses a ReplicaSetStatus without ``replicas`` or a DaemonSetStatus without its four
# counts. Keyed by (served apiVersion, kind); kinds whose strategy sets a status on
# create (Pod, Namespace, PersistentVolume[Claim]) and those without a status struct
# are absent.
ZERO_STATUS: dict[tuple[str, str], dict] = {
    ("apps/v1", "Deployment"): {},
    ("apps/v1", "ReplicaSet"): {"replicas": 0},
    ("apps/v1", "StatefulSet"): {"replicas": 0, "availableReplicas": 0},
    ("apps/v1", "DaemonSet"): {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                               "desiredNumberScheduled": 0, "numberReady": 0},
    ("v1", "ReplicationController"): {"replicas": 0},
    ("v1", "Service"): {"loadBalancer": {}},
    ("v1", "ResourceQuota"): {},
    ("batch/v1", "Job"): {},
    ("batch/v1", "CronJob"): {},
    ("networking.k8s.io/v1", "Ingress"): {"loadBalancer": {}},
    ("policy/v1", "PodDisruptionBudget"): {"disruptionsAllowed": 0, "currentHealthy": 0,
                                           "desiredHealthy": 0, "expectedPods": 0},
    ("autoscaling/v2", "HorizontalPodAutoscaler"): {"desiredReplicas": 0},
    ("autoscaling/v1", "HorizontalPodAutoscaler"): {"currentReplicas": 0,
                                                    "desiredReplicas": 0},
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): {},
    ("storage.k8s.io/v1", "VolumeAttachment"): {"attached": False},
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): {},
}


def with_zero_status(obj: dict, api_version: str, kind: str) -> dict:
    """``obj`` with the zero status fields of ``ZERO_STATUS`` it lacks (a copy when
    anything is added; cached objects are never mutated)."""
    zero = ZERO_STATUS.get((api_version, kind))
    if zero is None:
        return obj
    status = obj.get("status")
    if not isinstance(status, dict):
        return dict(obj, status={k: (dict(v) if isinstance(v, dict) else v)
                                 for k, v in zero.items()})
    if all(k in status for k in zero):
        return obj
    return dict(obj, status={**zero, **status})


def with_null_template_timestamps(obj: dict, paths) -> dict:
    """``obj`` with ``creationTimestamp: null`` in each template's metadata where it is
    unset; copies only the dicts on the way (cached objects are never mutated)."""
    out = obj
    for path in paths:
        node = out
        chain = [node]
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                break
            chain.append(node)
        else:
            meta = node.get("metadata")
            if isinstance(meta, dict) and "creationTimestamp" in meta:
                continue
            # Rebuild the chain of dicts with copies, root first.
            out = dict(out)
            parent = out
            for key in path:
                child = dict(parent[key])
                parent[key] = child
                parent = child
            parent["metadata"] = {"creationTimestamp": None, **(parent.get("metadata") or {})}
    return out


def encode_continue(revision: int, last_key: str, prefix: str) -> str:
    start = last_key[len(prefix):] + "\x00"
    token = {"v": "meta.k8s.io/v1", "rv": revision, "start": start}
    return base64.urlsafe_b64encode(orjson.dumps(token)).decode().rstrip("=")


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    """(revision, key to start at) from a continue token, or raise BadRequest."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        rev, start = int(data["rv"]), str(data["start"])
        if data.get("v") != "meta.k8s.io/v1" or rev <= 0 or ".." in start.split("/"):
            raise ValueError
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise errors.bad_request("continue key is not valid: incorrect encoded start "
                                 "resourceVersion (version meta.k8s.io/v1)") from None
    return rev, prefix + start


def paginate(items_iter, limit: int):
    """First ``limit`` matches of ``items_iter`` and whether more matches remain."""
    out = []
    for key, obj in items_iter:
        if limit and len(out) == limit:
            return out, True
        out.append((key, obj))
    return out, False


def counts_remaining(query) -> bool:
    """Whether a paged list reports ``remainingItemCount``: upstream counts the keys
    after the page only for an empty predicate (no label or field selector)."""
    return not query.get("labelSelector") and not query.get("fieldSelector")


def list_meta_dict(revision: int, cont: str = "", remaining: int | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"resourceVersion": str(revision)}
    if cont:
        m["continue"] = cont
    if remaining:
        m["remainingItemCount"] = remaining
    return m
