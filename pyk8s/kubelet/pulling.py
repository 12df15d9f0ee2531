"""Making a container's image present: upstream's images/image_manager.go EnsureImageExists.

Role: honour `imagePullPolicy` (Always, IfNotPresent, Never) before a container is
created, with upstream's events (Pulling, Pulled, Failed, BackOff,
ErrImageNeverPull) and errors (ErrImagePull, ImagePullBackOff, ErrImageNeverPull,
InvalidImageName), and a per pod and image pull back-off.

Invariants:
- An image already present satisfies IfNotPresent and Never at once. It satisfies
  Always too on an offline node (`KubeletSettings.offline_images`, the default):
  asking a registry would send traffic off the machine and fail anyway, so the
  local copy is used and the Pulled event says so. With `offline_images` off, the
  pull is attempted and a present image still stands in when it fails.
- A failed pull arms the back-off for (pod, image); while it runs, attempts fail
  with ImagePullBackOff without contacting the runtime's registry.
- Returns the image reference to run (the image id when known) and, when it was
  present, the image (its user, for runAsNonRoot) without another runtime call.
"""
from __future__ import annotations

from typing import Callable

from pyk8s.cri.runtime import CRIError, Image, Runtime
from pyk8s.kubelet.backoff import Backoff

ERR_IMAGE_PULL = "ErrImagePull"
ERR_IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
ERR_INVALID_IMAGE_NAME = "InvalidImageName"

# (event type, reason, message) -> None; the caller binds pod and container.
EventFn = Callable[[str, str, str], None]


class ImagePullError(Exception):
    """The image cannot be made present; `reason` is the container's waiting reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def default_pull_policy(image: str) -> str:
    """The API's default: Always for `:latest` or untagged images, else IfNotPresent."""
    name = image.split("@", 1)[0]
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    if "@" in image:
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


class ImagePuller:
    def __init__(self, runtime: Runtime, backoff: Backoff, *, offline: bool = True):
        self.runtime, self.backoff, self.offline = runtime, backoff, offline

    async def ensure(self, pod_uid: str, container: dict, event: EventFn
                     ) -> tuple[str, Image | None]:
        """(the image reference to run, the image when its details are known)."""
        image = container.get("image") or ""
        if not image or image != image.strip():
            raise ImagePullError(ERR_INVALID_IMAGE_NAME,
                                 f"Failed to apply default image tag \"{image}\": "
                                 "invalid reference format")
        policy = container.get("imagePullPolicy") or default_pull_policy(image)
        present = await self._present(image)
        if present is not None and (policy != "Always" or self.offline):
            message = f"Container image \"{image}\" already present on machine"
            if policy == "Always":
                message += " (imagePullPolicy Always: this node is offline, the local " \
                           "image is used)"
            event("Normal", "Pulled", message)
            return present.id, present
        if present is None and policy == "Never":
            message = f"Container image \"{image}\" is not present with pull policy of Never"
            event("Warning", ERR_IMAGE_NEVER_PULL, message)
            raise ImagePullError(ERR_IMAGE_NEVER_PULL, message)
        key = f"{pod_uid}_{image}"
        now = self.backoff.clock.now()
        if self.backoff.remaining_since_update(key) > 0:
            message = f"Back-off pulling image \"{image}\""
            event("Normal", "BackOff", message)
            raise ImagePullError(ERR_IMAGE_PULL_BACKOFF, message)
        event("Normal", "Pulling", f"Pulling image \"{image}\"")
        started = self.backoff.clock.monotonic()
        try:
            ref = await self.runtime.pull_image(image)
        except CRIError as e:
            if present is not None:
                event("Normal", "Pulled", f"Container image \"{image}\" already present on "
                                          f"machine (pull failed: {e.message})")
                return present.id, present
            self.backoff.next(key, now)
            message = f"Failed to pull image \"{image}\": {e.message}"
            event("Warning", "Failed", message)
            raise ImagePullError(ERR_IMAGE_PULL, message) from None
        took = self.backoff.clock.monotonic() - started
        event("Normal", "Pulled", f"Successfully pulled image \"{image}\" in {took:.3f}s")
        self.backoff.reset(key)
        return ref, None

    async def _present(self, image: str) -> Image | None:
        try:
            return await self.runtime.image_status(image)
        except CRIError:
            return None
