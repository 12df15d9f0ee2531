"""The real probe network (`NetworkProbes`, `pyk8s.cri.health`) against loopback servers."""
import grpc
import pytest
from aiohttp import web

from pyk8s.cri import health
from pyk8s.kubelet.probes import NetworkProbes, Result

from .conftest import free_port


@pytest.fixture
async def http_server():
    seen = []

    async def ok(request):
        seen.append(dict(request.headers))
        return web.Response(text="fine")

    async def broken(request):
        return web.Response(status=503, text="no")

    async def away(request):
        raise web.HTTPFound("http://192.0.2.1/elsewhere")

    app = web.Application()
    app.add_routes([web.get("/ok", ok), web.get("/broken", broken), web.get("/away", away)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()  # on a port the kernel picks, read back: no port to race for
    yield site._server.sockets[0].getsockname()[1], seen
    await runner.cleanup()


async def test_http_results_and_upstream_messages(http_server):
    port, seen = http_server
    net = NetworkProbes()
    base = f"http://127.0.0.1:{port}"
    headers = {"User-Agent": "kube-probe/1.32", "Accept": "*/*"}
    assert await net.http_get(f"{base}/ok", headers=headers, timeout=2) == (Result.SUCCESS,
                                                                            "fine")
    assert seen[0]["User-Agent"] == "kube-probe/1.32"
    assert await net.http_get(f"{base}/broken", headers=headers, timeout=2) == (
        Result.FAILURE, "HTTP probe failed with statuscode: 503")
    verdict, text = await net.http_get(f"{base}/away", headers=headers, timeout=2)
    assert verdict is Result.WARNING and text.startswith("Probe terminated redirects")
    closed = free_port()
    assert await net.http_get(f"http://127.0.0.1:{closed}/", headers=headers, timeout=2) == (
        Result.FAILURE, f"Get \"http://127.0.0.1:{closed}/\": dial tcp 127.0.0.1:{closed}: "
                        "connect: connection refused")


async def test_tcp_results(http_server):
    port, _ = http_server
    net = NetworkProbes()
    assert await net.tcp_connect("127.0.0.1", port, timeout=2) == (Result.SUCCESS, "")
    closed = free_port()
    assert await net.tcp_connect("127.0.0.1", closed, timeout=2) == (
        Result.FAILURE, f"dial tcp 127.0.0.1:{closed}: connect: connection refused")


@pytest.fixture
async def grpc_server():
    statuses = {"": 1, "sick": 2}

    async def check(request, context):
        service = request[2:].decode() if request else ""
        if service not in statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return b"\x08" + bytes([statuses[service]])

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port
    await server.stop(None)


async def test_grpc_health_checks(grpc_server):
    address = f"127.0.0.1:{grpc_server}"
    assert await health.check_health(address, "", timeout=2) == (True, "service is serving")
    assert await health.check_health(address, "sick", timeout=2) == (
        False, 'service unhealthy (responded with "NOT_SERVING")')
    ok, message = await health.check_health(address, "nope", timeout=2)
    assert not ok and message.startswith("error: health rpc probe failed: rpc error: "
                                         "code = NotFound desc = unknown service")
    assert health.encode_request("svc") == b"\x0a\x03svc"
    assert health.decode_status(b"\x08\x03") == 3
