"""What a node set up on this machine, recorded for `pyk8s reset`.

Role: several nodes can share one machine (`pyk8s server` and `pyk8s agent`
with another data dir), each with its own bridge and cgroup root, and only one
of them programs the host's kube-proxy rules and DNS address. A node writes
`<data-dir>/agent/node.json` when it starts; `pyk8s reset --data-dir D` reads it
and tears down that node's pieces only, never another node's.

Invariants:
- A data dir without a record (older versions) is reset with the defaults of
  the embedded node: bridge `pyk8s0`, cgroup root `/kubepods`, kube-proxy and DNS.
- The record is written atomically and only holds names and flags, no secrets.
"""
from __future__ import annotations

import dataclasses
import json
import os

RECORD = os.path.join("agent", "node.json")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NodeRecord:
    bridge: str = "pyk8s0"
    cgroup_root: str = "/kubepods"
    kube_proxy: bool = True  # this node's kube-proxy programs the host's nftables
    dns: bool = True  # this node's DNS holds the cluster DNS address on the host
    dns_ip: str = "10.43.0.10"  # that address (the tenth of the Service range)


def write_record(data_dir: str, record: NodeRecord) -> None:
    path = os.path.join(data_dir, RECORD)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dataclasses.asdict(record), f)
        f.write("\n")
    os.replace(tmp, path)


def read_record(data_dir: str) -> NodeRecord:
    try:
        with open(os.path.join(data_dir, RECORD)) as f:
            saved = json.load(f)
    except FileNotFoundError:
        return NodeRecord()
    known = {f.name for f in dataclasses.fields(NodeRecord)}
    return NodeRecord(**{k: v for k, v in saved.items() if k in known})
