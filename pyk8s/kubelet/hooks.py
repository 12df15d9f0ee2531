"""Lifecycle hooks: upstream's pkg/kubelet/lifecycle/handlers.go (handlerRunner.Run).

Role: run a container's postStart or preStop handler (exec through CRI ExecSync,
httpGet to the pod through the probes' `ProbeNetwork`, sleep on the injected
clock) and answer None on success or upstream's failure message, which the
syncer turns into FailedPostStartHook / FailedPreStopHook events.

Invariants:
- An exec hook has no timeout of its own (upstream passes 0); the caller bounds a
  preStop hook by the grace period.
- An httpGet hook fails only when the request cannot be made (upstream ignores
  the status code); like probes it only ever dials the pod's own IPs.
"""
from __future__ import annotations

from pyk8s.client.clock import Clock
from pyk8s.cri.runtime import CRIError, Runtime
from pyk8s.kubelet import pods
from pyk8s.kubelet.probes import ProbeError, ProbeNetwork, Result, go_quote, http_request

HTTP_HOOK_TIMEOUT = 10.0  # seconds; upstream's handler client has no shorter bound


async def run_handler(handler: dict, *, pod: dict, container: dict, container_id: str,
                      runtime: Runtime, network: ProbeNetwork, pod_ips: list[str],
                      clock: Clock) -> str | None:
    """Run one lifecycle handler; None on success, else upstream's message."""
    name, who = container["name"], pods.full_name(pod)
    if "exec" in handler:
        command = list((handler["exec"] or {}).get("command") or [])
        shown = "[" + " ".join(command) + "]"
        try:
            result = await runtime.exec_sync(container_id, command, timeout=0)
        except CRIError as e:
            return (f"Exec lifecycle hook ({shown}) for Container \"{name}\" in Pod \"{who}\" "
                    f"failed - error: {e.message}, message: \"\"")
        if result.exit_code != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            error = (f"command '{' '.join(command)}' exited with {result.exit_code}: "
                     f"{result.stderr.decode(errors='replace')}")
            return (f"Exec lifecycle hook ({shown}) for Container \"{name}\" in Pod \"{who}\" "
                    f"failed - error: {error}, message: {go_quote(output)}")
        return None
    if "httpGet" in handler:
        action = handler["httpGet"] or {}
        try:
            url, headers = http_request(action, container, pod_ips)
            verdict, output = await network.http_get(url, headers=headers,
                                                     timeout=HTTP_HOOK_TIMEOUT)
            # only a request that could not be made fails a hook, as upstream
            failed = verdict is Result.FAILURE and not output.startswith("HTTP probe failed")
        except ProbeError as e:
            failed, output = True, str(e)
        if failed:
            return (f"HTTP lifecycle hook ({action.get('path', '')}) for Container \"{name}\" "
                    f"in Pod \"{who}\" failed - error: {output}")
        return None
    if "sleep" in handler:
        await clock.sleep(float((handler["sleep"] or {}).get("seconds") or 0))
        return None
    return f"Cannot run handler: unknown handler for Container \"{name}\" in Pod \"{who}\""

