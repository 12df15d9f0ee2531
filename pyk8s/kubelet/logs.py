"""Reading CRI container log files: upstream's kuberuntime/logs/logs.go.

Role: containerd writes each container's output to a file under the pod's log
directory, one record per line: `<RFC3339Nano time> <stdout|stderr> <F|P> <text>`
(P: a partial line continued by the next record). `read_log` turns such a file into
what `kubectl logs` prints, honouring `tailLines`, `sinceSeconds`/`sinceTime`,
`timestamps`, `limitBytes` and `follow`; `tail_text` gives the last lines for a
FallbackToLogsOnError termination message.

Invariants:
- Output is the records' text in file order, a newline after every full record;
  with `timestamps`, each record's text is preceded by its time and a space.
- `tail_lines` counts records from the end of the file (upstream counts lines),
  applied before `since`; `limit_bytes` cuts the output at that many bytes, even
  inside a record, and ends the stream.
- `follow` keeps reading as the file grows and ends once `still_running()` answers
  False and everything written before that was delivered.
- Reads are small (64 KiB chunks) local-file reads.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
from typing import AsyncIterator, Awaitable, Callable

CHUNK = 64 * 1024
FOLLOW_POLL = 0.1  # how often a followed file is checked for growth
# Upstream's MaxContainerTerminationMessageLogLines / ...LogLength.
TERMINATION_LOG_LINES, TERMINATION_LOG_BYTES = 80, 2048


@dataclasses.dataclass(frozen=True, kw_only=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_time: datetime.datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class Record:
    time: str
    stream: str
    partial: bool
    text: bytes


def parse_record(line: bytes) -> Record | None:
    """One CRI log line (without its newline); None if it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    time, stream, tag = parts[0], parts[1], parts[2]
    text = parts[3] if len(parts) == 4 else b""
    if stream not in (b"stdout", b"stderr"):
        return None
    return Record(time.decode(), stream.decode(), tag.startswith(b"P"), text)


def parse_time(value: str) -> datetime.datetime | None:
    """An RFC 3339 time with up to nanoseconds (Python keeps microseconds)."""
    try:
        head, dot, frac = value.rstrip("Z").partition(".")
        micro = (frac + "000000")[:6] if dot else "000000"
        t = datetime.datetime.strptime(f"{head}.{micro}", "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        return None
    return t.replace(tzinfo=datetime.timezone.utc)


def tail_offset(path: str, lines: int) -> int:
    """The file offset where the last `lines` lines begin."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        if lines <= 0:
            return end
        pos, found = end, 0
        # a trailing newline ends the last line; it does not start another
        skip_last = True
        while pos > 0:
            step = min(CHUNK, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            for i in range(len(block) - 1, -1, -1):
                if block[i] != 0x0A:
                    continue
                if skip_last and pos + i == end - 1:
                    continue
                found += 1
                if found == lines:
                    return pos + i + 1
            skip_last = False
        return 0


class _Limit:
    def __init__(self, limit: int | None):
        self.left = limit

    def take(self, data: bytes) -> tuple[bytes, bool]:
        """(what may still be written, whether the limit is now reached)."""
        if self.left is None:
            return data, False
        data = data[:self.left]
        self.left -= len(data)
        return data, self.left <= 0


def _render(record: Record, options: LogOptions) -> bytes | None:
    if options.since_time is not None:
        t = parse_time(record.time)
        if t is not None and t < options.since_time:
            return None
    out = record.text if record.partial else record.text + b"\n"
    if options.timestamps:
        out = record.time.encode() + b" " + out
    return out


async def read_log(path: str, options: LogOptions, *,
                   still_running: Callable[[], Awaitable[bool]] | None = None
                   ) -> AsyncIterator[bytes]:
    """The container's output from CRI log file `path`, as `kubectl logs` shows it."""
    limit = _Limit(options.limit_bytes)
    if options.limit_bytes is not None and options.limit_bytes <= 0:
        return
    start = 0 if options.tail_lines is None else tail_offset(path, options.tail_lines)
    with open(path, "rb") as f:
        f.seek(start)
        pending = b""
        while True:
            chunk = f.read(CHUNK)
            if chunk:
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                out = bytearray()
                for line in lines:
                    record = parse_record(line)
                    rendered = record and _render(record, options)
                    if rendered:
                        out += rendered
                if out:
                    data, done = limit.take(bytes(out))
                    yield data
                    if done:
                        return
                continue
            if not options.follow or still_running is None:
                return
            if not await still_running():
                # one last read: what was written before the container exited
                if not f.read(1):
                    return
                f.seek(-1, os.SEEK_CUR)
                continue
            await asyncio.sleep(FOLLOW_POLL)


def tail_text(path: str, *, lines: int = TERMINATION_LOG_LINES,
              max_bytes: int = TERMINATION_LOG_BYTES) -> str:
    """The last `lines` records' text (at most `max_bytes`, from the end)."""
    try:
        start = tail_offset(path, lines)
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
    except OSError:
        return ""
    out = bytearray()
    for line in data.split(b"\n"):
        record = parse_record(line)
        if record is not None:
            out += record.text if record.partial else record.text + b"\n"
    return bytes(out[-max_bytes:]).decode(errors="replace")
