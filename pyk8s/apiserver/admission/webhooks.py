"""Mutating and validating admission webhooks (apiserver/pkg/admission/plugin/webhook).

Webhooks come from the cached Mutating/ValidatingWebhookConfiguration objects
(configurations in name order, webhooks in their order). A webhook is called when
one of its rules matches the operation, group, version, resource (with
``pods/status``, ``*/status``, ``pods/*``, ``*`` and ``*/*`` forms) and scope, and
its namespaceSelector and objectSelector match. The call is an HTTPS POST of an
``admission.k8s.io/v1`` AdmissionReview to ``clientConfig.url`` or to the Service's
cluster IP (with TLS verified for ``<service>.<namespace>.svc`` against
``caBundle``), within ``timeoutSeconds`` (10 by default).

A webhook is called only when all its ``matchConditions`` (CEL, compiled by
``api/cel.py``) are true: any false skips it; an evaluation error skips it
under ``failurePolicy: Ignore`` and otherwise refuses the request with upstream's
Forbidden ``<resource> "<name>" is forbidden: expression '<expr>' resulted in
error: <why>``. The ``authorizer`` variable checks the requesting user with this
server's authorizers (privileged group, Node, RBAC).

Mutating webhooks run one after another and their JSONPatch responses are applied
to the object; a webhook with ``reinvocationPolicy: IfNeeded`` is called once more
when a later webhook changed the object (see ``MutatingWebhook``). Validating
webhooks run concurrently. A denial becomes upstream's ``admission webhook
"<name>" denied the request: <message>``; a failed call refuses the request
(``failed calling webhook "<name>": failed to call webhook: Post
"<url>?timeout=10s": dial tcp 127.0.0.1:1: connect: connection refused``, 500, with
Go's wording of the transport error) unless ``failurePolicy: Ignore``. Webhook
configurations themselves are never sent to webhooks, so a broken webhook can
always be removed.
"""
from __future__ import annotations

import asyncio
import base64
import errno
import functools
import logging
import socket
import ssl
import uuid
from typing import TYPE_CHECKING

import aiohttp
import orjson

from ...api import cel, errors, jsonpatch, selectors
from ..authn import MASTERS, UserInfo
from ..authz import Attributes, node, rbac
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


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """Whether ``labels`` match a webhook's or policy's namespace/object selector
    (an empty or missing selector matches everything)."""
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

    def hooks(self, req: Request) -> list[tuple[str, dict]]:
        """(uid, webhook) of every configured webhook, in upstream's order."""
        if req.group in EXEMPT_GROUPS or req.operation not in ("CREATE", "UPDATE", "DELETE",
                                                               "CONNECT"):
            return []
        return [(f'{config["metadata"]["name"]}/{hook.get("name", "")}/{i}', hook)
                for config in self._configs()
                for i, hook in enumerate(config.get("webhooks") or ())]

    def should_call(self, hook: dict, req: Request) -> bool:
        """upstream's ShouldCallHook: selectors, rules, then matchConditions.

        Raises upstream's Forbidden when a condition fails to evaluate and the
        webhook's failurePolicy is Fail.
        """
        namespaced = bool(req.namespace) or req.is_("", "namespaces")
        if namespaced and not selector_matches(hook.get("namespaceSelector"),
                                                self._namespace_labels(req) or {}):
            return False
        labels = ((req.current() or {}).get("metadata") or {}).get("labels") or {}
        old_labels = ((req.old or {}).get("metadata") or {}).get("labels") or {}
        if not (selector_matches(hook.get("objectSelector"), labels) or
                (req.old is not None and
                 selector_matches(hook.get("objectSelector"), old_labels))):
            return False
        if not any(rule_matches(r, req, bool(req.namespace)) for r in hook.get("rules") or ()):
            return False
        conditions = hook.get("matchConditions") or []
        return not conditions or self._conditions_match(hook, conditions, req)

    def _conditions_match(self, hook: dict, conditions: list[dict], req: Request) -> bool:
        """upstream's matchconditions.matcher: any false skips; errors honour failurePolicy."""
        variables = {"object": req.obj if req.operation != "DELETE" else None,
                     "oldObject": req.old, "request": cel_request(req),
                     "namespaceObject": None}
        authz = functools.partial(authorize_check, self.server, req.user)
        errs: list[str] = []
        for condition in conditions:
            try:
                program = cel.compile_condition(condition.get("expression") or "")
                if not program.evaluate(variables, authz):
                    return False
            except (cel.CompileError, cel.EvalError) as err:
                errs.append(err.detail if isinstance(err, cel.CompileError) else str(err))
        if not errs:
            return True
        if hook.get("failurePolicy", "Fail") == "Ignore":
            log.warning("ignoring webhook %s: failed evaluating match conditions: %s",
                        hook.get("name"), "; ".join(errs))
            return False
        why = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
        qual = errors.qualified(req.resource, req.group)
        target = f'{qual} "{req.name}"' if req.name else qual
        raise errors.APIError(403, "Forbidden", f"{target} is forbidden: {why}",
                              details={"name": req.name, "group": req.group,
                                       "kind": req.resource})

    async def call(self, hook: dict, req: Request) -> dict | None:
        """The webhook's AdmissionResponse, or None when it failed and may be ignored."""
        review = admission_review(req)
        try:
            response = await post_review(self.server, hook, review)
            if response.get("uid") != review["request"]["uid"]:
                raise RuntimeError(
                    f'received invalid webhook response: expected response.uid='
                    f'"{review["request"]["uid"]}", got "{response.get("uid")}"')
        except Exception as err:  # any transport or decoding failure of the call
            if hook.get("failurePolicy", "Fail") == "Ignore":
                log.warning("Failed calling webhook, failing open %s: %s", hook.get("name"),
                            err)
                return None
            raise errors.internal(f'failed calling webhook "{hook.get("name")}": {err}') \
                from None
        req.warnings.extend(response.get("warnings") or ())
        if not response.get("allowed"):
            raise denied(hook.get("name", ""), response.get("status"))
        return response


def authorize_check(server: "APIServer", user: UserInfo | None, check: dict) -> tuple[bool, str]:
    """A match condition's ``authorizer`` check, answered as upstream's union
    authorizer would for the requesting user (or the service account named)."""
    if check.get("serviceAccount"):
        ns, name = check["serviceAccount"]
        user = UserInfo(f"system:serviceaccount:{ns}:{name}", "",
                        ("system:serviceaccounts", f"system:serviceaccounts:{ns}",
                         "system:authenticated"))
    if user is None or MASTERS in user.groups:  # the API server's own writes
        return True, ""
    if "path" in check:
        attrs = Attributes.non_resource(check["verb"], check["path"])
    else:
        attrs = Attributes(verb=check["verb"], namespace=check["namespace"],
                           api_group=check["group"], api_version=check["version"],
                           resource=check["resource"], subresource=check["subresource"],
                           name=check["name"])
    reasons = []
    for authorizer in (node.authorize, rbac.authorize):
        decision, reason = authorizer(server, user, attrs)
        if decision is not None:
            return decision, reason
        if reason:
            reasons.append(reason)
    return False, "\n".join(reasons)


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


def _request_fields(req: Request) -> dict:
    gvk = {"group": req.group, "version": req.version, "kind": req.kind}
    gvr = {"group": req.group, "version": req.version, "resource": req.resource}
    options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions",
                    "DELETE": "DeleteOptions"}.get(req.operation)
    request = {"kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
               "name": req.name, "namespace": req.namespace, "operation": req.operation,
               "userInfo": req.user.to_dict() if req.user else
               {"username": "system:apiserver", "groups": ["system:masters",
                                                           "system:authenticated"]},
               "dryRun": req.dry_run}
    if req.subresource:
        request["subResource"] = req.subresource
        request["requestSubResource"] = req.subresource
    if options_kind:
        request["options"] = {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"}
    if not request["namespace"]:
        del request["namespace"]
    return request


def cel_request(req: Request) -> dict:
    """The ``request`` variable of match conditions (upstream's CreateAdmissionRequest)."""
    return _request_fields(req)


def admission_review(req: Request) -> dict:
    request = {"uid": str(uuid.uuid4()), **_request_fields(req),
               "object": req.obj if req.operation != "DELETE" else None,
               "oldObject": req.old}
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


def _with_timeout(url: str, seconds: int) -> str:
    """client-go's Request.Timeout: the deadline as a ``timeout`` query parameter."""
    base, _, fragment = url.partition("#")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}timeout={seconds}s" + (f"#{fragment}" if fragment else "")


_ERRNO_TEXT = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "no route to host",
               errno.ENETUNREACH: "network is unreachable", errno.ECONNRESET:
               "connection reset by peer", errno.ETIMEDOUT: "connection timed out"}


def _go_addr(host: str, port: int | None) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _go_transport_error(err: Exception) -> str:
    """An aiohttp failure as Go's net/http words it (``dial tcp ...: connect: ...``)."""
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        cert_err = err.certificate_error
        code = getattr(cert_err, "verify_code", 0)
        if code in (2, 18, 19, 20, 21):
            why = "x509: certificate signed by unknown authority"
        elif code == 10:
            why = "x509: certificate has expired or is not yet valid"
        elif code == 62:
            why = f"x509: certificate is not valid for {err.host}"
        else:
            why = f"x509: {getattr(cert_err, 'verify_message', None) or cert_err}"
        return f"tls: failed to verify certificate: {why}"
    if isinstance(err, aiohttp.ClientConnectorError):
        os_err = err.os_error
        if isinstance(os_err, socket.gaierror):
            return f"dial tcp: lookup {err.host}: no such host"
        text = _ERRNO_TEXT.get(getattr(os_err, "errno", None) or 0)
        if text is None:
            text = (getattr(os_err, "strerror", None) or str(os_err)).lower()
        return f"dial tcp {_go_addr(err.host, err.port)}: connect: {text}"
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return "EOF"
    if isinstance(err, aiohttp.ClientSSLError):
        return "remote error: tls: handshake failure"
    return str(err) or type(err).__name__


def _status_error(status: int, body: bytes) -> str:
    """client-go's error for a non-2xx answer that is not a Status (NewGenericServerResponse)."""
    try:
        data = orjson.loads(body)
        if isinstance(data, dict) and data.get("kind") == "Status" and data.get("message"):
            return data["message"]
    except orjson.JSONDecodeError:
        pass
    fixed = {400: "the server rejected our request for an unknown reason",
             401: "the server has asked for the client to provide credentials",
             403: "the server does not allow access to the requested resource",
             404: "the server could not find the requested resource",
             405: "the server does not allow this method on the requested resource",
             409: "the server reported a conflict",
             413: "the server has rejected the request because the request is too large",
             415: "the server responded with the status code 415 but did not return more "
                  "information",
             429: "the server has received too many requests and has asked us to try again "
                  "later",
             503: "the server is currently unable to handle the request",
             504: "the server was unable to return a response in the time allotted, but may "
                  "still be processing the request"}
    if status in fixed:
        return fixed[status]
    text = body.decode(errors="replace").strip()
    if status >= 500:
        return (f'an error on the server ("{text}") has prevented the request from '
                f'succeeding' if text else
                "an error on the server has prevented the request from succeeding")
    return (f"the server responded with the status code {status} but did not return more "
            f"information")


async def post_review(server: "APIServer", hook: dict, review: dict) -> dict:
    config = hook.get("clientConfig") or {}
    url, server_name = _target(server, config)
    ctx = ssl.create_default_context()
    if config.get("caBundle"):
        ctx = ssl.create_default_context(cadata=base64.b64decode(config["caBundle"]).decode())
    seconds = hook.get("timeoutSeconds") or DEFAULT_TIMEOUT
    url = _with_timeout(url, seconds)
    timeout = aiohttp.ClientTimeout(total=seconds)
    session = await server.security.http_session()
    try:
        async with session.post(url, data=orjson.dumps(review), ssl=ctx, timeout=timeout,
                                server_hostname=server_name,
                                headers={"Content-Type": "application/json",
                                         "Accept": "application/json"}) as resp:
            body = await resp.read()
            status = resp.status
    except asyncio.TimeoutError:
        raise RuntimeError(f'failed to call webhook: Post "{url}": context deadline '
                           f'exceeded') from None
    except aiohttp.ClientError as err:
        raise RuntimeError(f'failed to call webhook: Post "{url}": '
                           f'{_go_transport_error(err)}') from None
    if not 200 <= status < 300:
        raise RuntimeError(f"failed to call webhook: {_status_error(status, body)}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise RuntimeError(f"failed to call webhook: {err}") from None
    response = data.get("response") if isinstance(data, dict) else None
    if not isinstance(response, dict):
        raise RuntimeError("received invalid webhook response: webhook response was absent")
    return response


class MutatingWebhook(_Webhooks):
    """upstream's mutating dispatcher, with its reinvocation (reinvocationPolicy IfNeeded).

    The webhooks run in order. When one of them changes the object, every webhook
    with ``reinvocationPolicy: IfNeeded`` that ran before the change is called once
    more, in order, after the first round (upstream's second admission round). A
    webhook skipped in the first round is never called in the second.
    """

    name = "MutatingAdmissionWebhook"
    plural = "mutatingwebhookconfigurations"

    async def admit(self, req: Request) -> None:
        hooks = self.hooks(req)
        if not hooks:
            return
        previously: set[str] = set()  # IfNeeded webhooks invoked since the last change
        reinvoke: set[str] = set()
        for uid, hook in hooks:
            if not self.should_call(hook, req):
                continue
            if await self._mutate(hook, req):
                reinvoke |= previously
                previously = set()
            if hook.get("reinvocationPolicy") == "IfNeeded":
                previously.add(uid)
        if not reinvoke:
            return
        for uid, hook in hooks:
            if uid not in reinvoke or not self.should_call(hook, req):
                continue
            await self._mutate(hook, req)

    async def _mutate(self, hook: dict, req: Request) -> bool:
        """Call one webhook and apply its patch; whether the object changed."""
        response = await self.call(hook, req)
        if response is None or not response.get("patch"):
            return False
        name = hook.get("name")
        if response.get("patchType", "JSONPatch") != "JSONPatch":
            raise errors.internal(f'failed calling webhook "{name}": '
                                  f'unsupported patch type "{response.get("patchType")}"')
        try:
            ops = orjson.loads(base64.b64decode(response["patch"]))
        except (ValueError, TypeError) as err:
            raise errors.internal(f'failed calling webhook "{name}": received undecodable '
                                  f'patch in webhook response: {err}') from None
        if not ops:
            return False
        if req.obj is None or req.operation == "DELETE":
            raise errors.internal(f'admission webhook "{name}" attempted to modify the '
                                  f'object, which is not supported for this operation')
        try:
            patched = jsonpatch.apply_json_patch(req.obj, ops)
        except Exception as err:  # the patch does not apply to the object
            raise errors.internal(str(err)) from None
        if patched == req.obj:
            return False
        req.obj.clear()
        req.obj.update(patched)
        return True


class ValidatingWebhook(_Webhooks):
    name = "ValidatingAdmissionWebhook"
    plural = "validatingwebhookconfigurations"

    async def validate(self, req: Request) -> None:
        hooks = [hook for _, hook in self.hooks(req) if self.should_call(hook, req)]
        if hooks:
            await asyncio.gather(*(self.call(h, req) for h in hooks))
