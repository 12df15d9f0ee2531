"""Durability: a writer killed with SIGKILL loses no acknowledged write."""
import asyncio
import os
import signal
import subprocess
import sys
import textwrap

from pyk8s.storage.sqlite import SqliteStore

WRITER = textwrap.dedent("""
    import asyncio, sys
    from pyk8s.storage.sqlite import SqliteStore

    async def main(path):
        store = SqliteStore(path, compact_interval=0)
        await store.start()
        async def writer(w):
            i = 0
            while True:
                rev = await store.create(f"/crash/{w}/{i}", b"x" * 512)
                # Printed only after the store acknowledged the write.
                print(f"{w}/{i} {rev}", flush=True)
                i += 1
        await asyncio.gather(*(writer(w) for w in range(8)))

    asyncio.run(main(sys.argv[1]))
""")


async def test_acknowledged_writes_survive_kill_9(tmp_path):
    path = str(tmp_path / "state.db")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE,
                            text=True)
    acked = {}
    try:
        for line in proc.stdout:
            name, rev = line.split()
            acked[f"/crash/{name}"] = int(rev)
            if len(acked) >= 2000:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(acked) >= 2000, "writer died before acknowledging enough writes"

    store = SqliteStore(path, compact_interval=0)
    await store.start()
    try:
        listed = {kv.key: kv.revision for kv in (await store.list("/crash/")).items}
        missing = [k for k in acked if listed.get(k) != acked[k]]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
        top = await store.current_revision()
        assert top >= max(acked.values())
        assert await store.create("/crash/after", b"1") > top
    finally:
        await store.close()
