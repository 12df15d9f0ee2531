"""The kubelet: runs the pods bound to its node through CRI and reports them back.

Modules, from the outside in:

- `kubelet`: `Kubelet` (informer, pod workers, PLEG, housekeeping, logs) and `run()`;
  `node`: containerd, the pod network and blackhole routes, `reset_node`;
  `__main__`: `python -m pyk8s.kubelet`;
- `workers`: one task per pod through syncing, terminating, terminated;
- `syncing`: SyncPod/KillPod on the runtime; `actions`: computePodActions;
  `pulling`: image pull policy and back-off; `backoff`: the per-key back-off;
- `sandboxes`, `containers`: pod and container -> CRI configs (the environment with
  service variables too); `volumes`: pod volumes;
- `probing`: probe workers and their verdicts; `probes`: running one probe (exec,
  httpGet, tcpSocket, grpc via `pyk8s.cri.health`); `hooks`: postStart/preStop;
- `runtimepods`: what the runtime holds for a pod; `podstatus`: the API status;
  `statusmanager`: writing it; `nodestatus`, `nodelease`: the Node and its Lease;
- `logs`, `server`: CRI log files and the HTTPS endpoint serving them;
- `images`: offline images; `pods`: pod helpers and CRI labels; `settings`: tunables.

Layer rule: imports `pyk8s.api`, `pyk8s.client` and `pyk8s.cri` only.
"""
