"""RBAC: Role/ClusterRole rules reached through RoleBinding/ClusterRoleBinding subjects.

Upstream's plugin/pkg/auth/authorizer/rbac and pkg/registry/rbac/validation, over the
watch cache. A request is allowed when one rule of one role bound to the user (by
name, by one of its groups, or as a service account) matches it; the reason names
the binding, as upstream (``RBAC: allowed by ClusterRoleBinding "x" of ClusterRole
"y" to User "z"``).

Cost: bindings are indexed by (binding namespace, subject kind, subject name), kept
current by watch-cache listeners, so a decision touches only the bindings of the
user's name and groups and the rules of their roles, never every binding. The index
is rebuilt when the watch cache relists (a new ResourceCache object).

Escalation (pkg/registry/rbac/*/policybased): a Role, ClusterRole or binding may
only grant what its author already holds, unless the author may ``escalate`` (roles)
or ``bind`` (bindings) or is in ``system:masters``.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Iterator

from ...storage import EventType
from ...api import errors
from ..authn import MASTERS, SA_PREFIX, UserInfo
from . import Attributes, forbidden_error

if TYPE_CHECKING:
    from ..app import APIServer
    from ...registry.generic import GenericStore

GROUP = "rbac.authorization.k8s.io"


# -- rule evaluation (pkg/apis/rbac/v1/evaluation_helpers.go) --------------------------

def _has(values, wanted: str, wildcard: str = "*") -> bool:
    return any(v == wildcard or v == wanted for v in values or ())


def resource_matches(rule: dict, combined: str, subresource: str) -> bool:
    for r in rule.get("resources") or ():
        if r == "*" or r == combined:
            return True
        if subresource and r == "*/" + subresource:
            return True
    return False


def url_matches(rule: dict, path: str) -> bool:
    for u in rule.get("nonResourceURLs") or ():
        if u == "*" or u == path or (u.endswith("*") and path.startswith(u.rstrip("*"))):
            return True
    return False


def rule_allows(attrs: Attributes, rule: dict) -> bool:
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return url_matches(rule, attrs.path)
    combined = attrs.resource + ("/" + attrs.subresource if attrs.subresource else "")
    names = rule.get("resourceNames") or ()
    return (_has(rule.get("apiGroups"), attrs.api_group)
            and resource_matches(rule, combined, attrs.subresource)
            and (not names or attrs.name in names))


# -- the binding index ---------------------------------------------------------------

def _subject_keys(binding: dict, namespace: str) -> Iterator[tuple[str, str, str]]:
    for s in binding.get("subjects") or ():
        kind, name = s.get("kind"), s.get("name", "")
        if kind in ("User", "Group"):
            yield namespace, kind, name
        elif kind == "ServiceAccount":
            sa_ns = s.get("namespace") or namespace
            if sa_ns:
                yield namespace, "User", f"{SA_PREFIX}{sa_ns}:{name}"


def applies_to(user: UserInfo, subject: dict, namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_ns = subject.get("namespace") or namespace
        return bool(sa_ns) and user.name == f"{SA_PREFIX}{sa_ns}:{name}"
    return False


class BindingIndex:
    """The bindings of one resource, by (binding namespace, subject kind, subject name)."""

    def __init__(self, store: "GenericStore"):
        self.store = store
        self.by_subject: dict[tuple[str, str, str], set[str]] = {}
        self._cache = None

    def _ensure(self) -> None:
        cache = self.store.cache
        if cache is self._cache:
            return
        self._cache = cache
        self.by_subject = {}
        cache.listeners.append(self._changed)
        for key, obj in cache.objects.items():
            self._add(key, obj)

    def _key(self, obj: dict) -> str:
        meta = obj["metadata"]
        return self.store.key(meta.get("namespace", ""), meta["name"])

    def _add(self, key: str, obj: dict) -> None:
        for sk in _subject_keys(obj, obj["metadata"].get("namespace", "")):
            self.by_subject.setdefault(sk, set()).add(key)

    def _remove(self, key: str, obj: dict) -> None:
        for sk in _subject_keys(obj, obj["metadata"].get("namespace", "")):
            keys = self.by_subject.get(sk)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.by_subject[sk]

    def _changed(self, kind, obj: dict, prev: dict | None) -> None:
        key = self._key(obj)
        if prev is not None:
            self._remove(key, prev)
        if kind is not EventType.DELETED:
            self._add(key, obj)

    def bindings(self, user: UserInfo, namespace: str) -> list[dict]:
        """Bindings in ``namespace`` ("" for cluster bindings) naming the user or a group."""
        self._ensure()
        keys: set[str] = set()
        for sk in [(namespace, "User", user.name)] + [(namespace, "Group", g)
                                                      for g in user.groups]:
            keys |= self.by_subject.get(sk, set())
        objects = self.store.cache.objects
        return [objects[k] for k in sorted(keys) if k in objects]


class RBAC:
    """Rule resolution for one API server (upstream's DefaultRuleResolver)."""

    def __init__(self, server: "APIServer"):
        self.server = server
        s = server.stores
        self.roles = s[(GROUP, "v1", "roles")]
        self.cluster_roles = s[(GROUP, "v1", "clusterroles")]
        self.cluster_bindings = BindingIndex(s[(GROUP, "v1", "clusterrolebindings")])
        self.role_bindings = BindingIndex(s[(GROUP, "v1", "rolebindings")])

    def role_rules(self, ref: dict, namespace: str) -> list[dict]:
        """The rules a roleRef points at; raises APIError NotFound as upstream's listers."""
        kind, name = (ref or {}).get("kind"), (ref or {}).get("name", "")
        if kind == "ClusterRole":
            obj = self.cluster_roles.cache.objects.get(self.cluster_roles.key("", name))
            if obj is None:
                raise errors.not_found("clusterrole", GROUP, name)
        elif kind == "Role":
            obj = self.roles.cache.objects.get(self.roles.key(namespace, name))
            if obj is None:
                raise errors.not_found("role", GROUP, name)
        else:
            raise errors.bad_request(f'unsupported role reference kind: "{kind}"')
        return list(obj.get("rules") or ())

    def visit(self, user: UserInfo, namespace: str) -> Iterator[tuple[str, dict | None, str]]:
        """(source, rule, error) for every rule reaching the user in ``namespace``."""
        scopes = [("", "ClusterRoleBinding", self.cluster_bindings)]
        if namespace:
            scopes.append((namespace, "RoleBinding", self.role_bindings))
        for ns, kind, index in scopes:
            for binding in index.bindings(user, ns):
                subject = next((s for s in binding.get("subjects") or ()
                                if applies_to(user, s, ns)), None)
                if subject is None:
                    continue
                ref = binding.get("roleRef") or {}
                try:
                    rules = self.role_rules(ref, ns)
                except errors.APIError as err:
                    yield "", None, err.message
                    continue
                source = _describe(kind, binding, ref, subject, ns)
                for rule in rules:
                    yield source, rule, ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[str]]:
        rules, errs = [], []
        for _, rule, err in self.visit(user, namespace):
            if rule is not None:
                rules.append(rule)
            if err:
                errs.append(err)
        return rules, errs

    def authorize(self, user: UserInfo, attrs: Attributes) -> tuple[bool | None, str]:
        errs = []
        for source, rule, err in self.visit(user, attrs.namespace):
            if rule is not None and rule_allows(attrs, rule):
                return True, f"RBAC: allowed by {source}"
            if err:
                errs.append(err)
        if errs:
            return None, "RBAC: " + _aggregate(errs)
        return None, ""


def _describe(kind: str, binding: dict, ref: dict, subject: dict, ns: str) -> str:
    name = binding["metadata"]["name"] + (f"/{ns}" if ns else "")
    if subject.get("kind") == "ServiceAccount":
        who = f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or ns}"'
    else:
        who = f'{subject.get("kind")} "{subject.get("name")}"'
    return f'{kind} "{name}" of {ref.get("kind")} "{ref.get("name")}" to {who}'


def _aggregate(messages: list[str]) -> str:
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def rbac_of(server: "APIServer") -> RBAC:
    return server.security.rbac


def authorize(server: "APIServer", user: UserInfo, attrs: Attributes) -> tuple[bool | None,
                                                                               str]:
    return rbac_of(server).authorize(user, attrs)


# -- coverage and escalation (validation/policy_comparator.go, rule.go) ---------------

def breakdown(rule: dict) -> list[dict]:
    """A rule as atomic rules of one group, resource, verb and name each."""
    out = []
    names = rule.get("resourceNames") or ()
    for group in rule.get("apiGroups") or ():
        for resource in rule.get("resources") or ():
            for verb in rule.get("verbs") or ():
                if names:
                    out += [{"apiGroups": [group], "resources": [resource], "verbs": [verb],
                             "resourceNames": [n]} for n in names]
                else:
                    out.append({"apiGroups": [group], "resources": [resource],
                                "verbs": [verb]})
    for url in rule.get("nonResourceURLs") or ():
        out += [{"nonResourceURLs": [url], "verbs": [v]} for v in rule.get("verbs") or ()]
    return out


def _covers_resource(owner: list[str], sub: str) -> bool:
    for r in owner:
        if r == "*" or r == sub:
            return True
        if r.startswith("*/") and "/" in sub and sub.split("/", 1)[1] == r[2:]:
            return True
    return False


def rule_covers(owner: dict, sub: dict) -> bool:
    ov = owner.get("verbs") or []
    if not ("*" in ov or all(v in ov for v in sub.get("verbs") or [])):
        return False
    og = owner.get("apiGroups") or []
    if not ("*" in og or all(g in og for g in sub.get("apiGroups") or [])):
        return False
    orr = owner.get("resources") or []
    if not all(_covers_resource(orr, r) for r in sub.get("resources") or []):
        return False
    for url in sub.get("nonResourceURLs") or []:
        if not any(u == url or (u.endswith("*") and url.startswith(u.rstrip("*")))
                   for u in owner.get("nonResourceURLs") or []):
            return False
    sub_names, owner_names = sub.get("resourceNames") or [], owner.get("resourceNames") or []
    if not sub_names:
        return not owner_names
    return not owner_names or all(n in owner_names for n in sub_names)


def covers(owner_rules: list[dict], rules: list[dict]) -> tuple[bool, list[dict]]:
    missing = [sub for rule in rules for sub in breakdown(rule)
               if not any(rule_covers(o, sub) for o in owner_rules)]
    return not missing, missing


def compact(rules: list[dict]) -> list[dict]:
    """Merge simple one-group one-resource rules that differ only by verbs."""
    out, simple = [], {}
    for r in rules:
        if (not r.get("resourceNames") and not r.get("nonResourceURLs")
                and len(r.get("apiGroups") or []) == 1 and len(r.get("resources") or []) == 1):
            key = (r["apiGroups"][0], r["resources"][0])
            if key in simple:
                simple[key]["verbs"] = simple[key]["verbs"] + list(r.get("verbs") or [])
            else:
                simple[key] = {"apiGroups": list(r["apiGroups"]),
                               "resources": list(r["resources"]),
                               "verbs": list(r.get("verbs") or [])}
        else:
            out.append(r)
    return out + list(simple.values())


def _go_strings(values) -> str:
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def compact_string(rule: dict) -> str:
    """rbacv1helpers.CompactString: ``{APIGroups:[""], Resources:["pods"], Verbs:["get"]}``."""
    parts = []
    for label, key in (("APIGroups", "apiGroups"), ("Resources", "resources"),
                       ("NonResourceURLs", "nonResourceURLs"),
                       ("ResourceNames", "resourceNames"), ("Verbs", "verbs")):
        if rule.get(key):
            parts.append(f"{label}:{_go_strings(rule[key])}")
    return "{" + ", ".join(parts) + "}"


FULL_AUTHORITY = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                  {"nonResourceURLs": ["*"], "verbs": ["*"]}]


def confirm_no_escalation(server: "APIServer", user: UserInfo, namespace: str,
                          rules: list[dict]) -> str | None:
    """None when the user already holds ``rules`` in ``namespace``, else why not."""
    owner, errs = rbac_of(server).rules_for(user, namespace)
    ok, missing = covers(owner, rules)
    if ok:
        return None
    described = sorted({compact_string(r) for r in compact(missing)})
    msg = (f'user "{user.name}" (groups={_go_strings(user.groups)}) is attempting to grant '
           f"RBAC permissions not currently held:\n" + "\n".join(described))
    if errs:
        msg += f"; resolution errors: [{', '.join(errs)}]"
    return msg


def _only_gc_fields(obj: dict, old: dict | None) -> bool:
    if old is None:
        return False
    volatile = ("ownerReferences", "finalizers", "resourceVersion", "managedFields",
                "generation")

    def strip(o: dict) -> dict:
        meta = {k: v for k, v in (o.get("metadata") or {}).items() if k not in volatile}
        return dict(o, metadata=meta)
    return strip(obj) == strip(old)


async def check_escalation(server: "APIServer", user: UserInfo | None, operation: str,
                           obj: dict | None, old: dict | None, plural: str) -> None:
    """Refuse a Role, ClusterRole or binding write that grants more than its author holds."""
    from . import authorize as authorize_all
    if user is None or MASTERS in user.groups or operation not in ("CREATE", "UPDATE"):
        return
    if obj is None or (operation == "UPDATE" and _only_gc_fields(obj, old)):
        return
    meta = obj["metadata"]
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if plural in ("roles", "clusterroles"):
        allowed, _ = await authorize_all(server, user, Attributes(
            "escalate", namespace=namespace, api_group=GROUP, api_version="*",
            resource=plural, name=name))
        if allowed:
            return
        why = confirm_no_escalation(server, user, namespace, list(obj.get("rules") or ()))
        if why is None and plural == "clusterroles" and obj.get("aggregationRule"):
            if confirm_no_escalation(server, user, "", FULL_AUTHORITY) is not None:
                why = "must have cluster-admin privileges to use the aggregationRule"
        if why is not None:
            raise forbidden_error(plural, GROUP, name, why)
        return
    ref = obj.get("roleRef") or {}
    resource = {"ClusterRole": "clusterroles", "Role": "roles"}.get(ref.get("kind"))
    if resource is not None:
        allowed, _ = await authorize_all(server, user, Attributes(
            "bind", namespace=namespace, api_group=ref.get("apiGroup", ""),
            resource=resource, name=ref.get("name", "")))
        if allowed:
            return
    rules = rbac_of(server).role_rules(ref, namespace)
    why = confirm_no_escalation(server, user, namespace, rules)
    if why is not None:
        raise forbidden_error(plural, GROUP, name, why)
