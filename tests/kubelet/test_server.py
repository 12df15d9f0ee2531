"""The kubelet's log endpoint: upstream's query parameters in, text or a Status out."""
import asyncio
import datetime

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pyk8s import aio
from pyk8s.kubelet.server import LogError, make_app, self_signed, ssl_context


class Reader:
    def __init__(self):
        self.calls = []

    async def read_logs(self, namespace, pod, container=None, **kw):
        self.calls.append((namespace, pod, container, kw))
        if pod == "missing":
            raise LogError(404, 'pods "missing" not found', reason="NotFound")

        async def stream():
            yield b"line 1\n"
            yield b"line 2\n"
        return stream()


async def test_logs_stream_with_the_query_as_options():
    reader = Reader()
    async with TestClient(TestServer(make_app(reader))) as client:
        r = await client.get("/containerLogs/ns/web/app", params={
            "follow": "true", "tailLines": "5", "timestamps": "true", "limitBytes": "100",
            "sinceTime": "2025-01-01T00:00:00Z", "previous": "false"})
        assert r.status == 200 and await r.text() == "line 1\nline 2\n"
        assert r.headers["Content-Type"].startswith("text/plain")
        [(ns, pod, container, kw)] = reader.calls
        assert (ns, pod, container) == ("ns", "web", "app")
        assert kw == {"follow": True, "previous": False, "tail_lines": 5, "since_seconds": None,
                      "since_time": datetime.datetime(2025, 1, 1,
                                                      tzinfo=datetime.timezone.utc),
                      "timestamps": True, "limit_bytes": 100}
        r = await client.get("/containerLogs/ns/missing/app")
        assert r.status == 404
        assert (await r.json())["message"] == 'pods "missing" not found'
        r = await client.get("/containerLogs/ns/web/app", params={"tailLines": "x"})
        assert r.status == 400 and (await r.json())["reason"] == "BadRequest"
        assert (await client.get("/healthz")).status == 200


def test_self_signed_certificate_is_made_once(tmp_path):
    cert, key = self_signed(tmp_path, "node-a", ["127.0.0.1"])
    assert self_signed(tmp_path, "node-a", ["127.0.0.1"]) == (cert, key)
    ssl_context(cert, key)


async def test_a_follow_on_a_quiet_container_ends_when_the_client_leaves():
    closed = asyncio.Event()

    class QuietReader:
        async def read_logs(self, namespace, pod, container=None, **kw):
            async def stream():
                try:
                    yield b"hello\n"
                    await asyncio.Event().wait()  # a container that says nothing more
                    yield b"never\n"
                finally:
                    closed.set()
            return stream()

    # served as the kubelet serves it: aiohttp's TestServer would cancel the handler
    # when the client leaves, which the kubelet's runner does not
    runner = web.AppRunner(make_app(QuietReader()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            r = await session.get(f"http://127.0.0.1:{port}/containerLogs/ns/web/app",
                                  params={"follow": "true"})
            assert await r.content.readline() == b"hello\n"
            r.close()  # the user pressed Ctrl-C
            await aio.wait_for(closed.wait(), 5)
    finally:
        await runner.cleanup()
