"""kubectl exec and attach through the kubelet's streaming endpoint (streaming.py).

The unit tests check the channel framing and the options. The node tests (root)
run busybox pods on the test node's containerd and talk to the kubelet's
`/exec` and `/attach` as the API server relays clients to it: WebSocket with the
channel protocols of kubectl 1.32 (v5) and the Python client (v4), and SPDY
(kubectl's fallback, proxied to containerd).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import ssl
import subprocess

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict

from pyk8s import aio
from pyk8s.cri.runtime import Container, ContainerMetadata
from pyk8s.kubelet import spdy, streaming
from pyk8s.kubelet.streaming import ChannelCodec, StreamError, options_from_query

from .conftest import KUBECTL
from .test_node import apply, wait_phase


# ---- unit: framing and options ---------------------------------------------------------

def test_binary_and_base64_channel_frames():
    v5 = ChannelCodec(streaming.V5)
    assert v5.encode(1, b"hi") == b"\x01hi"
    assert v5.decode(b"\x00abc") == (0, b"abc")
    assert v5.decode(b"\xff\x00") == (255, b"\x00") and v5.close_signal
    assert v5.decode(b"") is None
    b64 = ChannelCodec(streaming.V1_BASE64)
    assert b64.encode(2, b"oops") == "2b29wcw=="
    assert b64.decode("0aGVsbG8=") == (0, b"hello")
    assert b64.decode("0***") is None
    assert not ChannelCodec(streaming.V4).close_signal


def test_status_is_passed_through_for_v4_and_reduced_to_its_message_before():
    failure = json.dumps({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                          "message": "command terminated with non-zero exit code: exit 3",
                          "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}})
    success = b'{"metadata":{},"status":"Success"}'
    for protocol in (streaming.V5, streaming.V4, streaming.V4_BASE64):
        assert ChannelCodec(protocol).status(failure.encode()) == failure.encode()
        assert ChannelCodec(protocol).status(success) == success
    v1 = ChannelCodec(streaming.V1)
    assert v1.status(success) is None
    assert v1.status(failure.encode()) == b"command terminated with non-zero exit code: exit 3"


def test_options_follow_the_kubelets_query_names():
    q = MultiDict([("command", "sh"), ("command", "-c"), ("command", "echo hi"),
                   ("input", "1"), ("output", "1"), ("error", "1"), ("tty", "1")])
    opts = options_from_query(q, exec_=True)
    assert opts.command == ("sh", "-c", "echo hi")
    assert opts.stdin and opts.stdout and opts.tty
    assert not opts.stderr  # a tty has no separate stderr
    with pytest.raises(StreamError, match="at least 1 of stdin, stdout, stderr"):
        options_from_query(MultiDict([("command", "ls")]), exec_=True)
    with pytest.raises(StreamError, match="at least one command"):
        options_from_query(MultiDict([("output", "1")]), exec_=True)
    assert options_from_query(MultiDict([("output", "1")]), exec_=False).command == ()


# ---- unit: the bridge, against a fake runtime streaming server ---------------------------

class FakeStreamingServer:
    """containerd's streaming server as the kubelet sees it: a SPDY/3.1 upgrade at
    the URL CRI Exec handed out, then a `cat` that reports status `exit_code`."""

    def __init__(self) -> None:
        self.sessions: list[dict] = []
        self.exit_code = 0
        self.resizes: list[bytes] = []
        self.ended = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        client = aio.take_over_connection(request)
        response = web.StreamResponse(status=101, headers={
            "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": streaming.V4})
        await response.prepare(request)
        conn = spdy.SpdyConnection(client, _TransportWriter(request.transport),
                                   server=True)
        conn.start()
        streams = {}
        expected = 1 + sum(request.query.get(k) == "1" for k in ("in", "out", "err", "tty"))
        while len(streams) < expected:
            stream = await conn.accept_stream()
            streams[stream.headers["streamtype"]] = stream
        self.sessions.append(streams)
        try:
            await self.run(streams)
        finally:
            self.ended.set()
            await conn.close()
        return response

    async def run(self, streams: dict) -> None:
        if "resize" in streams:
            asyncio.create_task(self.read_resizes(streams["resize"]))
        if "stdin" in streams:
            while data := await streams["stdin"].read():
                await streams["stdout"].write(data)
        await streams["stdout"].write(b"done\n")
        status = {"metadata": {}, "status": "Success"}
        if self.exit_code:
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: exit status "
                                 f"{self.exit_code}",
                      "details": {"causes": [{"reason": "ExitCode",
                                              "message": str(self.exit_code)}]}}
        await streams["error"].write(json.dumps(status).encode())
        await streams["error"].close_write()

    async def read_resizes(self, stream) -> None:
        while data := await stream.read():
            self.resizes.append(data)


class _TransportWriter:
    def __init__(self, transport) -> None:
        self.transport = transport

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.transport.close()


class StubRuntime:
    """The two CRI calls the streaming endpoint makes."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.calls: list[tuple] = []

    async def list_containers(self, *, state=None, labels=None, **_):
        if labels.get("io.kubernetes.container.name") != "sh":
            return []
        return [Container(id="c1", pod_sandbox_id="s1", metadata=ContainerMetadata(name="sh"),
                          image="busybox", image_ref="sha256:0", state=state, created_at=1,
                          labels=dict(labels), annotations={})]

    async def exec(self, cid, cmd, *, tty, stdin, stdout, stderr) -> str:
        self.calls.append(("exec", cid, tuple(cmd), tty, stdin, stdout, stderr))
        flags = {"in": stdin, "out": stdout, "err": stderr, "tty": tty}
        return f"{self.base}/exec/token?" + "&".join(f"{k}=1" for k, on in flags.items() if on)


@pytest.fixture
async def endpoint():
    fake = FakeStreamingServer()
    runtime_app = web.Application()
    runtime_app.router.add_post("/exec/token", fake.handle)
    async with TestServer(runtime_app) as runtime_server:
        runtime = StubRuntime(str(runtime_server.make_url("")).rstrip("/"))
        pods_ = {("ns", "box"): {"metadata": {"name": "box", "namespace": "ns", "uid": "u1"}}}
        server = streaming.StreamingServer(find_pod=lambda ns, n: pods_.get((ns, n)),
                                           runtime=runtime)
        app = web.Application()
        server.setup(app)
        async with TestClient(TestServer(app)) as client:
            yield client, fake, runtime


async def test_bridge_v5_stdin_close_and_status(endpoint):
    client, fake, runtime = endpoint
    async with client.ws_connect("/exec/ns/box/sh", params=_query(["cat"], input=True,
                                 output=True, error=True), protocols=[streaming.V5]) as ws:
        assert ws.protocol == streaming.V5
        await ws.send_bytes(b"\x00abc")
        await ws.send_bytes(bytes([255, 0]))
        frames = [msg.data async for msg in ws]
    assert frames[0] == b"\x01"  # the "connected" frame
    assert b"".join(f[1:] for f in frames if f[:1] == b"\x01") == b"abcdone\n"
    assert frames[-1] == b'\x03{"metadata": {}, "status": "Success"}'
    assert runtime.calls == [("exec", "c1", ("cat",), False, True, True, True)]
    assert set(fake.sessions[0]) == {"error", "stdin", "stdout", "stderr"}


async def test_bridge_base64_protocol_and_v1_status(endpoint):
    client, fake, _ = endpoint
    fake.exit_code = 7
    async with client.ws_connect("/exec/ns/box/sh", params=_query(["ls"], output=True),
                                 protocols=[streaming.V1_BASE64]) as ws:
        frames = [msg.data async for msg in ws]
    assert frames == ["1", "1" + base64.b64encode(b"done\n").decode(),
                      "3" + base64.b64encode(b"command terminated with non-zero exit code: "
                                             b"exit status 7").decode()]


async def test_bridge_tty_forwards_resizes_without_stderr(endpoint):
    client, fake, runtime = endpoint
    async with client.ws_connect("/exec/ns/box/sh", params=_query(
            ["sh"], input=True, output=True, error=True, tty=True),
            protocols=[streaming.V4]) as ws:
        await ws.send_bytes(b'\x04{"Width":80,"Height":24}')
        await ws.send_bytes(b"\x00exit\r")
        await aio.wait_for(_until(lambda: fake.resizes), 10)
        await ws.close()  # v4 has no stdin close: the client leaving ends the session
    await aio.wait_for(fake.ended.wait(), 10)
    assert fake.resizes == [b'{"Width":80,"Height":24}']
    assert set(fake.sessions[0]) == {"error", "stdin", "stdout", "resize"}
    assert runtime.calls[0][3:] == (True, True, True, False)


async def _until(check) -> None:
    while not check():
        await asyncio.sleep(0.01)


async def test_requests_refused_before_any_upgrade(endpoint):
    client, _, runtime = endpoint
    ws_headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    r = await client.get("/exec/ns/box/sh", params=_query(["ls"], output=True))
    assert r.status == 400 and (await r.json())["message"] == "Upgrade request required"
    r = await client.get("/exec/ns/box/sh", params=_query(["ls"]), headers=ws_headers)
    assert r.status == 400
    assert "at least 1 of stdin, stdout, stderr" in (await r.json())["message"]
    r = await client.get("/exec/ns/box/sh", params=_query(["ls"], output=True),
                         headers={**ws_headers, "Sec-WebSocket-Protocol": "v9.nope"})
    assert r.status == 400 and "not supported" in (await r.json())["message"]
    r = await client.get("/attach/ns/gone/sh", params=_query(output=True), headers=ws_headers)
    assert r.status == 404 and (await r.json())["message"] == "pod does not exist"
    assert runtime.calls == []


# ---- a real node ---------------------------------------------------------------------

def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def _query(command: list[str] = (), **flags: bool) -> list[tuple[str, str]]:
    return [("command", c) for c in command] + [(k, "1") for k, on in flags.items() if on]


async def _ws_session(kubelet, kind: str, ns: str, pod: str, container: str,
                      query: list[tuple[str, str]], *, protocol: str = streaming.V4,
                      stdin: bytes | None = None, close_stdin: bool = False,
                      resize: dict | None = None) -> dict[int, bytes]:
    """Every channel's bytes until the kubelet closes the WebSocket."""
    url = f"https://127.0.0.1:{kubelet.port}/{kind}/{ns}/{pod}/{container}"
    out: dict[int, bytes] = {}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, params=query, protocols=[protocol],
                                      ssl=_insecure()) as ws:
            assert ws.protocol == protocol
            if resize is not None:
                await ws.send_bytes(b"\x04" + json.dumps(resize).encode())
            if stdin is not None:
                await ws.send_bytes(b"\x00" + stdin)
            if close_stdin:
                await ws.send_bytes(bytes([255, 0]))
            async for msg in ws:
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                if msg.data:
                    out[msg.data[0]] = out.get(msg.data[0], b"") + msg.data[1:]
    return out


def ws_session(*args, **kw) -> dict[int, bytes]:
    return asyncio.run(aio.wait_for(_ws_session(*args, **kw), 60))


@pytest.fixture
def sleeper(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "box", [{"name": "sh", "image": "busybox",
                                         "command": ["sleep", "3600"]}],
          terminationGracePeriodSeconds=0)
    wait_phase(cluster, ns, "box", ("Running",))
    return ns


@pytest.mark.root
def test_exec_over_websocket_returns_output_and_success(kubelet, sleeper):
    out = ws_session(kubelet, "exec", sleeper, "box", "sh",
                     _query(["sh", "-c", "echo hi; echo oops >&2"], output=True, error=True))
    assert out[1] == b"hi\n" and out[2] == b"oops\n"
    assert json.loads(out[3]) == {"metadata": {}, "status": "Success"}


@pytest.mark.root
def test_exec_exit_code_reaches_the_client_as_upstreams_status(kubelet, sleeper):
    out = ws_session(kubelet, "exec", sleeper, "box", "sh",
                     _query(["sh", "-c", "exit 3"], output=True, error=True))
    status = json.loads(out[3])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert status["message"].startswith("command terminated with non-zero exit code")


@pytest.mark.root
def test_v5_stdin_close_signal_reaches_the_process_as_eof(kubelet, sleeper):
    out = ws_session(kubelet, "exec", sleeper, "box", "sh",
                     _query(["sh", "-c", "cat; echo done"], input=True, output=True,
                            error=True),
                     protocol=streaming.V5, stdin=b"hello-stdin\n", close_stdin=True)
    assert out[1] == b"hello-stdin\ndone\n"
    assert json.loads(out[3])["status"] == "Success"


# the size arrives on its own stream, maybe after the shell started: poll for it
WAIT_FOR_SIZE = 'until [ "$(stty size 2>/dev/null)" = "33 77" ]; do sleep 0.1; done; '


@pytest.mark.root
def test_tty_exec_sees_its_terminal_and_the_resize(kubelet, sleeper):
    out = ws_session(kubelet, "exec", sleeper, "box", "sh",
                     _query(["sh", "-c", WAIT_FOR_SIZE + "stty size; tty"], output=True, tty=True,
                            input=True),
                     protocol=streaming.V5, resize={"Width": 77, "Height": 33})
    lines = out.get(1, b"").decode().splitlines()
    assert len(lines) >= 2, out
    assert lines[0] == "33 77" and lines[1].startswith("/dev/pts/"), lines
    assert 2 not in out  # a tty has no stderr


@pytest.mark.root
def test_unknown_pod_or_container_is_a_404_status(kubelet, sleeper):
    async def go(path: str) -> tuple[int, dict]:
        url = f"https://127.0.0.1:{kubelet.port}{path}"
        async with aiohttp.ClientSession() as s:
            async with s.get(url, params=_query(["ls"], output=True), ssl=_insecure(),
                             headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                      "Sec-WebSocket-Version": "13",
                                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                      "Sec-WebSocket-Protocol": streaming.V4}) as r:
                return r.status, await r.json()

    code, status = asyncio.run(go(f"/exec/{sleeper}/nope/sh"))
    assert code == 404 and status["reason"] == "NotFound"
    assert status["message"] == "pod does not exist"
    code, status = asyncio.run(go(f"/exec/{sleeper}/box/nope"))
    assert code == 404 and status["message"] == "container not found ('nope')"


@pytest.mark.root
def test_spdy_clients_are_proxied_to_the_runtime(kubelet, sleeper):
    async def go() -> tuple[str, bytes, dict]:
        url = (f"https://127.0.0.1:{kubelet.port}/exec/{sleeper}/box/sh?command=sh&"
               "command=-c&command=cat%3B+exit+5&input=1&output=1")
        conn, protocol = await spdy.connect(url, [streaming.V4, "channel.k8s.io"],
                                            ssl=_insecure())
        try:
            error = await conn.open_stream({"streamtype": "error"})
            stdin = await conn.open_stream({"streamtype": "stdin"})
            stdout = await conn.open_stream({"streamtype": "stdout"})
            await stdin.write(b"through spdy\n")
            await stdin.close_write()
            out = b""
            while chunk := await stdout.read():
                out += chunk
            status = b""
            while chunk := await error.read():
                status += chunk
            return protocol, out, json.loads(status)
        finally:
            await conn.close()

    protocol, out, status = asyncio.run(aio.wait_for(go(), 60))
    assert protocol == streaming.V4
    assert out == b"through spdy\n"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]


@pytest.mark.root
def test_attach_sees_the_containers_output_and_feeds_its_stdin(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "reader", [{
        "name": "sh", "image": "busybox", "stdin": True,
        "command": ["sh", "-c", "while read line; do echo got $line; done"]}],
          terminationGracePeriodSeconds=0)
    wait_phase(cluster, ns, "reader", ("Running",))

    async def go() -> bytes:
        url = f"https://127.0.0.1:{kubelet.port}/attach/{ns}/reader/sh"
        seen = b""
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, params=_query(input=True, output=True,
                                                             error=True),
                                          protocols=[streaming.V5], ssl=_insecure()) as ws:
                await ws.send_bytes(b"\x00hello\n")
                async for msg in ws:
                    if msg.data[:1] == b"\x01":
                        seen += msg.data[1:]
                    if b"got hello" in seen:
                        break
        return seen

    assert b"got hello\n" in asyncio.run(aio.wait_for(go(), 60))


# ---- through the API server, with the users' tools ------------------------------------

@pytest.mark.root
def test_kubectl_exec_prints_output_and_passes_the_exit_code(cluster, sleeper):
    r = cluster.kubectl("exec", "box", "-n", sleeper, "--", "echo", "hi")
    assert r.stdout == "hi\n"
    r = cluster.kubectl("exec", "box", "-n", sleeper, "--", "sh", "-c", "echo out; exit 3",
                        check=False)
    assert r.returncode == 3 and r.stdout == "out\n"
    assert "command terminated with exit code 3" in r.stderr


@pytest.mark.root
@pytest.mark.parametrize("websockets", ["true", "false"])  # false: kubectl's SPDY
def test_kubectl_exec_stdin_ends_at_eof(cluster, sleeper, monkeypatch, websockets):
    monkeypatch.setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
    r = cluster.kubectl("exec", "-v=6", "-i", "box", "-n", sleeper, "--", "sh", "-c",
                        "cat; echo end", input="line one\nline two\n")
    assert r.stdout == "line one\nline two\nend\n"
    method = "GET" if websockets == "true" else "POST"  # the transport kubectl used
    assert f"{method} https://" in r.stderr and "/exec?" in r.stderr, r.stderr


@pytest.mark.root
def test_kubectl_exec_with_a_terminal(cluster, sleeper):
    # `script` gives kubectl a real terminal, so -t is honoured
    env = {"KUBECONFIG": cluster.kubeconfig, "HOME": str(cluster.data_dir)}
    command = (f"{KUBECTL} exec -it box -n {sleeper} -- sh -c 'tty; echo typed: $(head -n1)'")
    r = subprocess.run(["script", "-qec", command, "/dev/null"], input="hello\n",
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "/dev/pts/" in r.stdout and "typed: hello" in r.stdout


@pytest.mark.root
@pytest.mark.parametrize("websockets", ["true", "false"])  # false: kubectl's SPDY
def test_kubectl_cp_round_trips_a_file(cluster, sleeper, tmp_path, monkeypatch, websockets):
    monkeypatch.setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
    # megabytes, so the runtime's session ends while data is still flowing (and the
    # upload outgrows every buffer between kubectl, the API server and the kubelet)
    original = tmp_path / "data.bin"
    original.write_bytes(os.urandom(4 << 20))
    cluster.kubectl("cp", str(original), f"{sleeper}/box:/tmp/data.bin")
    r = cluster.kubectl("exec", "box", "-n", sleeper, "--", "md5sum", "/tmp/data.bin")
    assert r.stdout.split()[0] == hashlib.md5(original.read_bytes()).hexdigest()
    back = tmp_path / "back.bin"
    cluster.kubectl("cp", f"{sleeper}/box:/tmp/data.bin", str(back))
    assert back.read_bytes() == original.read_bytes()


@pytest.mark.root
def test_kubectl_attach_sees_the_output(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "reader", [{
        "name": "sh", "image": "busybox", "stdin": True, "stdinOnce": True,
        "command": ["sh", "-c", "while read line; do echo got $line; done; echo bye"]}],
          terminationGracePeriodSeconds=0)
    wait_phase(cluster, ns, "reader", ("Running",))
    r = cluster.kubectl("attach", "-i", "reader", "-n", ns, input="hello\n")
    assert "got hello" in r.stdout and "bye" in r.stdout


@pytest.mark.root
def test_the_official_client_streams_exec_output(cluster, sleeper):
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(cluster.kubeconfig))
    out = stream(api.connect_get_namespaced_pod_exec, "box", sleeper,
                 command=["sh", "-c", "echo from python"], stderr=True, stdin=False,
                 stdout=True, tty=False)
    assert out == "from python\n"
