"""Polling with a deadline: the only way tests wait."""
import time


def wait_for(fn, what: str, deadline: float = 90.0, interval: float = 0.5):
    """Call ``fn`` until it returns something truthy; fail after ``deadline`` s."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
