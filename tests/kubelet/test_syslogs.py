"""The kubelet's `/logs/` endpoint: Go's FileServer over a temporary log directory,
listings, files, redirects, Go's error texts, and no way out of the directory."""
import asyncio
import gzip
import os

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.kubelet import syslogs
from pyk8s.kubelet.server import make_app


class NoReader:
    async def read_logs(self, *args, **kwargs):
        raise AssertionError("not a container log request")


@pytest.fixture
def root(tmp_path):
    logs = tmp_path / "log"
    (logs / "pods" / "ns_web_1").mkdir(parents=True)
    (logs / "syslog").write_text("Jan 1 kernel: booted\n")
    (logs / "kubelet.log").write_text("I0101 kubelet started\n")
    (logs / "a & <b>.log").write_text("odd name\n")
    (logs / "what?#.log").write_text("more odd\n")
    (logs / "binary.dat").write_bytes(bytes(range(256)))
    (logs / "pods" / "ns_web_1" / "0.log").write_text("container line\n")
    (tmp_path / "secret").write_text("outside\n")
    os.symlink(tmp_path / "secret", logs / "escape")
    os.symlink(tmp_path, logs / "parent")
    os.symlink("syslog", logs / "messages")  # a link inside the root is fine
    os.mkfifo(logs / "pipe")
    return logs


@pytest.fixture
async def client(root):
    app = make_app(NoReader(), setups=[syslogs.routes(root)])
    async with TestClient(TestServer(app)) as c:
        yield c


async def raw_get(client, path: str, headers: str = "") -> tuple[int, dict, bytes]:
    """GET with the path exactly as written (a client library would normalize `..`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
                 .encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), fields, body


async def test_the_root_is_listed_as_gos_file_server_lists_it(client, root):
    r = await client.get("/logs/")
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Last-Modified" in r.headers
    assert await r.text() == (
        '<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'
        '<a href="a%20&%20%3Cb%3E.log">a &amp; &lt;b&gt;.log</a>\n'
        '<a href="binary.dat">binary.dat</a>\n'
        '<a href="escape">escape</a>\n'
        '<a href="kubelet.log">kubelet.log</a>\n'
        '<a href="messages">messages</a>\n'
        '<a href="parent">parent</a>\n'
        '<a href="pipe">pipe</a>\n'
        '<a href="pods/">pods/</a>\n'
        '<a href="syslog">syslog</a>\n'
        '<a href="what%3F%23.log">what?#.log</a>\n'
        '</pre>\n')
    # NodeLogQuery is off by default: a log query is a plain listing
    q = await client.get("/logs/", params={"query": "kubelet", "sinceTime": "2025-01-01"})
    assert q.status == 200 and await q.text() == await r.text()
    sub = await client.get("/logs/pods/ns_web_1/")
    assert '<a href="0.log">0.log</a>' in await sub.text()


async def test_files_are_served_with_their_type(client, root):
    r = await client.get("/logs/kubelet.log")
    assert r.status == 200 and await r.text() == "I0101 kubelet started\n"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Last-Modified" in r.headers
    r = await client.get("/logs/syslog", params={"query": "ignored"})  # sniffed as text
    assert await r.text() == "Jan 1 kernel: booted\n"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    r = await client.get("/logs/binary.dat")
    assert await r.read() == bytes(range(256))
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert await (await client.get("/logs/pods/ns_web_1/0.log")).text() == "container line\n"
    assert await (await client.get("/logs/messages")).text() == "Jan 1 kernel: booted\n"
    r = await client.get("/logs/kubelet.log", headers={"Range": "bytes=6-12"})
    assert r.status == 206 and await r.text() == "kubelet"


async def test_a_compressed_sibling_is_never_sent_instead(client, root):
    (root / "kubelet.log.gz").write_bytes(gzip.compress(b"stale rotated copy\n"))
    r = await client.get("/logs/kubelet.log", headers={"Accept-Encoding": "gzip"},
                         auto_decompress=False)
    assert await r.read() == b"I0101 kubelet started\n"
    assert "Content-Encoding" not in r.headers


async def test_missing_paths_answer_gos_404(client):
    for path in ("/logs/nothing.log", "/logs/syslog/below", "/logs", "/logs/pipe"):
        r = await client.get(path, allow_redirects=False)
        assert (r.status, await r.text()) == (404, "404 page not found\n"), path
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_redirects_are_gos(client):
    r = await client.get("/logs/pods", allow_redirects=False, params={"x": "1"})
    assert (r.status, r.headers["Location"]) == (301, "pods/?x=1")
    r = await client.get("/logs/syslog/", allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (301, "../syslog")
    r = await client.get("/logs/pods/index.html", allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (301, "./")


async def test_a_directory_with_an_index_serves_it(client, root):
    (root / "pods" / "index.html").write_text("<p>index</p>\n")
    r = await client.get("/logs/pods/")
    assert await r.text() == "<p>index</p>\n"
    assert r.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", [
    "/logs/../secret", "/logs/%2e%2e/secret", "/logs/%2E%2E%2Fsecret", "/logs/..%2fsecret",
    "/logs/pods/../../secret", "/logs/pods/%2e%2e/%2e%2e/secret", "/logs//../secret",
    "/logs/escape", "/logs/parent/secret", "/logs/parent/", "/logs/%2e%2e/%2e%2e/etc/passwd",
])
async def test_nothing_outside_the_root_is_served(client, path):
    status, fields, body = await raw_get(client, path)
    assert b"outside" not in body and b"root:" not in body
    assert (status, body) == (404, b"404 page not found\n")


async def test_dot_dot_inside_the_root_is_cleaned_as_go_cleans_it(client):
    status, _, body = await raw_get(client, "/logs/pods/%2e%2e/kubelet.log")
    assert (status, body) == (200, b"I0101 kubelet started\n")
    status, _, body = await raw_get(client, "/logs/../../")  # cleans to the root
    assert status == 200 and b'<a href="syslog">syslog</a>' in body


async def test_a_disabled_handler_answers_405():
    app = web.Application()
    syslogs.routes(None)(app)
    async with TestClient(TestServer(app)) as c:
        r = await c.get("/logs/syslog")
        assert (r.status, await r.text()) == (405, "logs endpoint is disabled.\n")


def test_escaping_follows_go():
    assert syslogs.href(b"a:b") == b"./a:b"
    assert syslogs.href("ü x".encode()) == b"%C3%BC%20x"
    assert syslogs.href(b"$&+,;=@~-_.") == b"$&+,;=@~-_."
    assert syslogs.html_escape(b"<'\"&>") == b"&lt;&#39;&#34;&amp;&gt;"
    assert syslogs.clean("/a/../../b/./c//") == "/b/c"
    assert syslogs.go_base("/a/b/") == "b"
