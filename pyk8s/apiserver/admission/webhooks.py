"""Mutating and validating admission webhooks (apiserver/pkg/admission/plugin/webhook).

Webhooks come from the cached Mutating/ValidatingWebhookConfiguration objects
(configurations in name order, webhooks in their order). A webhook is called when
one of its rules matches the operation, group, version, resource (with
``pods/status``, ``*/status``, ``pods/*``, ``*`` and ``*/*`` forms) and scope, and
its namespaceSelector and objectSelector match. The call is an HTTPS POST of an
``admission.k8s.io/v1`` AdmissionReview to ``clientConfig.url`` or to the Service's
cluster IP (with TLS verified for ``<service>.<namespace>.svc`` against
``caBundle``), within ``timeoutSeconds`` (10 by default).

Mutating webhooks run one after another and their JSONPatch responses are applied
to the object; validating webhooks run concurrently. A denial becomes upstream's
``admission webhook "<name>" denied the request: <message>``; a failed call refuses
the request (``failed calling webhook ...``, 500) unless ``failurePolicy: Ignore``.
Webhook configurations themselves are never sent to webhooks, so a broken webhook
can always be removed. ``matchConditions`` (CEL) are not evaluated: a webhook with
them is called as if they matched.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import uuid
from typing import TYPE_CHECKING

import aiohttp
import orjson

from ...api import jsonpatch, selectors
from ...api import errors
from . import Plugin, Request

if TYPE_CHECKING:
    from ..app import APIServer

log = logging.getLogger(__name__)
GROUP = "admissionregistration.k8s.io"
DEFAULT_TIMEOUT = 10
EXEMPT_GROUPS = {GROUP}


def _match_resource(rule_resources: list[str], resource: str, subresource: str) -> bool:
    for r in rule_resources or ():
        res, _, sub = r.partition("/")
        if r == "*/*":
            return True
        if not subresource:
            if r == "*" or r == resource:
                return True
            continue
        if res in ("*", resource) and sub in ("*", subresource) and "/" in r:
            return True
    return False


def rule_matches(rule: dict, req: Request, namespaced: bool) -> bool:
    ops = rule.get("operations") or []
    if "*" not in ops and req.operation not in ops:
        return False
    groups, versions = rule.get("apiGroups") or [], rule.get("apiVersions") or []
    if "*" not in groups and req.group not in groups:
        return False
    if "*" not in versions and req.version not in versions:
        return False
    if not _match_resource(rule.get("resources") or [], req.resource, req.subresource):
        return False
    scope = rule.get("scope") or "*"
    if scope == "Cluster" and namespaced:
        return False
    if scope == "Namespaced" and not namespaced:
        return False
    return True


def _selector_matches(selector: dict | None, labels: dict) -> bool:
    if not selector:
        return True
    return selectors.label_selector_from_dict(selector).matches(labels or {})


class _Webhooks(Plugin):
    plural = ""
    mutating = False

    def _configs(self) -> list[dict]:
        store = self.server.stores.get((GROUP, "v1", self.plural))
        if store is None:
            return []
        return sorted(store.cache.objects.values(), key=lambda o: o["metadata"]["name"])

    def _namespace_labels(self, req: Request) -> dict | None:
        if req.is_("", "namespaces"):
            return ((req.current() or {}).get("metadata") or {}).get("labels") or {}
        if not req.namespace:
            return None
        store = self.server.stores[("", "v1", "namespaces")]
        ns = store.cache.objects.get(store.key("", req.namespace))
        return ((ns or {}).get("metadata") or {}).get("labels") or {}

    def matching(self, req: Request) -> list[dict]:
        if req.group in EXEMPT_GROUPS or req.operation not in ("CREATE", "UPDATE", "DELETE",
                                                               "CONNECT"):
            return []
        namespaced = bool(req.namespace) or req.is_("", "namespaces")
        out = []
        ns_labels = None
        for config in self._configs():
            for hook in config.get("webhooks") or ():
                if not any(rule_matches(r, req, bool(req.namespace))
                           for r in hook.get("rules") or ()):
                    continue
                if namespaced:
                    if ns_labels is None:
                        ns_labels = self._namespace_labels(req) or {}
                    if not _selector_matches(hook.get("namespaceSelector"), ns_labels):
                        continue
                labels = ((req.current() or {}).get("metadata") or {}).get("labels") or {}
                old_labels = ((req.old or {}).get("metadata") or {}).get("labels") or {}
                if not (_selector_matches(hook.get("objectSelector"), labels) or
                        (req.old is not None and
                         _selector_matches(hook.get("objectSelector"), old_labels))):
                    continue
                out.append(hook)
        return out

    async def call(self, hook: dict, req: Request) -> dict | None:
        """The webhook's AdmissionResponse, or None when it failed and may be ignored."""
        review = admission_review(req)
        try:
            response = await post_review(self.server, hook, review)
        except Exception as err:  # any transport or decoding failure of the call
            if hook.get("failurePolicy", "Fail") == "Ignore":
                log.warning("ignoring failed webhook %s: %s", hook.get("name"), err)
                return None
            raise errors.internal(f'failed calling webhook "{hook.get("name")}": {err}') \
                from None
        if response.get("uid") != review["request"]["uid"]:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return None
            raise errors.internal(
                f'failed calling webhook "{hook.get("name")}": expected response.uid='
                f'"{review["request"]["uid"]}", got "{response.get("uid")}"')
        req.warnings.extend(response.get("warnings") or ())
        if not response.get("allowed"):
            raise denied(hook.get("name", ""), response.get("status"))
        return response


def denied(name: str, status: dict | None) -> errors.APIError:
    """upstream's webhookerrors.ToStatusErr."""
    status = dict(status or {})
    code = status.get("code") or 0
    if code < 400:
        code = 400
    prefix = f'admission webhook "{name}" denied the request'
    if status.get("message"):
        message = f"{prefix}: {status['message']}"
    elif status.get("reason"):
        message = f"{prefix}: {status['reason']}"
    else:
        message = f"{prefix} without explanation"
    return errors.APIError(code, status.get("reason", ""), message,
                           details=status.get("details"))


def admission_review(req: Request) -> dict:
    gvk = {"group": req.group, "version": req.version, "kind": req.kind}
    gvr = {"group": req.group, "version": req.version, "resource": req.resource}
    options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions",
                    "DELETE": "DeleteOptions"}.get(req.operation)
    request = {"uid": str(uuid.uuid4()), "kind": gvk, "resource": gvr,
               "requestKind": gvk, "requestResource": gvr, "name": req.name,
               "namespace": req.namespace, "operation": req.operation,
               "userInfo": req.user.to_dict() if req.user else
               {"username": "system:apiserver", "groups": ["system:masters",
                                                           "system:authenticated"]},
               "object": req.obj if req.operation != "DELETE" else None,
               "oldObject": req.old, "dryRun": req.dry_run}
    if req.subresource:
        request["subResource"] = req.subresource
        request["requestSubResource"] = req.subresource
    if options_kind:
        request["options"] = {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"}
    if not request["namespace"]:
        del request["namespace"]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": request}


def _target(server: "APIServer", config: dict) -> tuple[str, str | None]:
    """(URL to call, TLS server name) for a webhook clientConfig."""
    if config.get("url"):
        return config["url"], None
    svc_ref = config.get("service") or {}
    ns, name = svc_ref.get("namespace", ""), svc_ref.get("name", "")
    port = svc_ref.get("port", 443)
    store = server.stores[("", "v1", "services")]
    svc = store.cache.objects.get(store.key(ns, name))
    if svc is None:
        raise RuntimeError(f'service "{ns}/{name}" not found')
    ip = (svc.get("spec") or {}).get("clusterIP")
    if not ip or ip == "None":
        raise RuntimeError(f'service "{ns}/{name}" has no cluster IP')
    path = svc_ref.get("path") or ""
    return f"https://{ip}:{port}{path}", f"{name}.{ns}.svc"


async def post_review(server: "APIServer", hook: dict, review: dict) -> dict:
    config = hook.get("clientConfig") or {}
    url, server_name = _target(server, config)
    ctx = ssl.create_default_context()
    if config.get("caBundle"):
        ctx = ssl.create_default_context(cadata=base64.b64decode(config["caBundle"]).decode())
    timeout = aiohttp.ClientTimeout(total=hook.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    session = await server.security.http_session()
    try:
        async with session.post(url, data=orjson.dumps(review), ssl=ctx, timeout=timeout,
                                server_hostname=server_name,
                                headers={"Content-Type": "application/json",
                                         "Accept": "application/json"}) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f'Post "{url}": the server responded with status '
                                   f'{resp.status}')
    except asyncio.TimeoutError:
        raise RuntimeError(f'failed to call webhook: Post "{url}": context deadline '
                           f'exceeded') from None
    except aiohttp.ClientError as err:
        raise RuntimeError(f'failed to call webhook: Post "{url}": {err}') from None
    data = orjson.loads(body)
    response = data.get("response")
    if not isinstance(response, dict):
        raise RuntimeError("the webhook's AdmissionReview has no response")
    return response


class MutatingWebhook(_Webhooks):
    name = "MutatingAdmissionWebhook"
    plural = "mutatingwebhookconfigurations"

    async def admit(self, req: Request) -> None:
        for hook in self.matching(req):
            response = await self.call(hook, req)
            if response is None or not response.get("patch") or req.obj is None:
                continue
            if response.get("patchType", "JSONPatch") != "JSONPatch":
                raise errors.internal(f'failed calling webhook "{hook.get("name")}": '
                                      f'unsupported patch type "{response.get("patchType")}"')
            ops = orjson.loads(base64.b64decode(response["patch"]))
            try:
                patched = jsonpatch.apply_json_patch(req.obj, ops)
            except Exception as err:  # the patch does not apply to the object
                raise errors.internal(f'failed calling webhook "{hook.get("name")}": '
                                      f'{err}') from None
            req.obj.clear()
            req.obj.update(patched)


class ValidatingWebhook(_Webhooks):
    name = "ValidatingAdmissionWebhook"
    plural = "validatingwebhookconfigurations"

    async def validate(self, req: Request) -> None:
        hooks = self.matching(req)
        if hooks:
            await asyncio.gather(*(self.call(h, req) for h in hooks))
