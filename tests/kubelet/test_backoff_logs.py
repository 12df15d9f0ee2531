"""Restart back-off maths and CRI log file reading."""
import datetime

from pyk8s.client.clock import FakeClock
from pyk8s.kubelet import logs
from pyk8s.kubelet.backoff import Backoff
from pyk8s.kubelet.logs import LogOptions
from pyk8s.kubelet.syncing import go_duration


def test_backoff_doubles_to_five_minutes_and_resets_after_ten_quiet_minutes():
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    delays = []
    for _ in range(7):
        crash = clock.now()
        if b.in_backoff_since("k", crash):
            wait = b.remaining("k", crash)
            clock.advance(wait)
        b.next("k", crash)
        delays.append(b.get("k"))
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    clock.advance(601)  # ran 10 minutes without crashing
    assert not b.in_backoff_since("k", clock.now())
    b.next("k", clock.now())
    assert b.get("k") == 10


def test_backoff_measures_from_the_exit():
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    b.next("k", clock.now())
    exited = clock.now()
    clock.advance(4)
    assert b.remaining("k", exited) == 6
    clock.advance(6)
    assert not b.in_backoff_since("k", exited)


def test_go_duration():
    assert [go_duration(s) for s in (10, 80, 300, 3700)] == ["10s", "1m20s", "5m0s",
                                                             "1h1m40s"]


def write_log(path, records):
    path.write_text("".join(f"2025-01-01T00:00:0{i}.{i}00000000Z {stream} {tag} {text}\n"
                            for i, (stream, tag, text) in enumerate(records)))


async def collect(path, **options):
    out = b""
    async for chunk in logs.read_log(str(path), LogOptions(**options)):
        out += chunk
    return out.decode()


async def test_read_log_joins_partials_and_honours_options(tmp_path):
    path = tmp_path / "0.log"
    write_log(path, [("stdout", "F", "one"), ("stderr", "P", "tw"), ("stderr", "F", "o"),
                     ("stdout", "F", "three")])
    assert await collect(path) == "one\ntwo\nthree\n"
    assert await collect(path, tail_lines=1) == "three\n"
    assert await collect(path, tail_lines=0) == ""
    assert await collect(path, limit_bytes=5) == "one\nt"
    since = datetime.datetime(2025, 1, 1, 0, 0, 2, tzinfo=datetime.timezone.utc)
    assert await collect(path, since_time=since) == "o\nthree\n"
    assert (await collect(path, timestamps=True)).splitlines()[0] == \
        "2025-01-01T00:00:00.000000000Z one"


async def test_follow_reads_until_the_container_stops(tmp_path):
    path = tmp_path / "0.log"
    write_log(path, [("stdout", "F", "first")])
    state = {"calls": 0}

    async def running():
        state["calls"] += 1
        if state["calls"] == 1:
            with open(path, "a") as f:
                f.write("2025-01-01T00:00:09.0Z stdout F last\n")
            return True
        return False

    out = b""
    async for chunk in logs.read_log(str(path), LogOptions(follow=True), still_running=running):
        out += chunk
    assert out == b"first\nlast\n"


def test_tail_text_for_termination_messages(tmp_path):
    path = tmp_path / "0.log"
    write_log(path, [("stdout", "F", f"line {i}") for i in range(5)])
    assert logs.tail_text(str(path), lines=2) == "line 3\nline 4\n"
    assert logs.tail_text(str(path), max_bytes=7) == "line 4\n"
    assert logs.tail_text(str(tmp_path / "missing")) == ""
