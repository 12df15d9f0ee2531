"""A container's environment: service variables, envFrom, key refs, on the fake node too."""
import base64

import pytest

from pyk8s.client import resources
from pyk8s.kubelet import containers as ctr

from .fakenode import make_node
from .helpers import container, pod


def service(name: str, namespace: str, ip: str, ports: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": ip, "ports": ports}}


KUBERNETES = service("kubernetes", "default", "10.43.0.1",
                     [{"name": "https", "port": 443, "protocol": "TCP"}])


def test_service_variables_are_upstreams():
    env = ctr.service_environment([service("my-db", "shop", "10.43.0.20", [
        {"port": 5432}, {"name": "metrics", "port": 9187, "protocol": "TCP"},
        {"name": "dns-udp", "port": 53, "protocol": "UDP"}])])
    assert env == {
        "MY_DB_SERVICE_HOST": "10.43.0.20", "MY_DB_SERVICE_PORT": "5432",
        "MY_DB_SERVICE_PORT_METRICS": "9187", "MY_DB_SERVICE_PORT_DNS_UDP": "53",
        "MY_DB_PORT": "tcp://10.43.0.20:5432",
        "MY_DB_PORT_5432_TCP": "tcp://10.43.0.20:5432", "MY_DB_PORT_5432_TCP_PROTO": "tcp",
        "MY_DB_PORT_5432_TCP_PORT": "5432", "MY_DB_PORT_5432_TCP_ADDR": "10.43.0.20",
        "MY_DB_PORT_9187_TCP": "tcp://10.43.0.20:9187", "MY_DB_PORT_9187_TCP_PROTO": "tcp",
        "MY_DB_PORT_9187_TCP_PORT": "9187", "MY_DB_PORT_9187_TCP_ADDR": "10.43.0.20",
        "MY_DB_PORT_53_UDP": "udp://10.43.0.20:53", "MY_DB_PORT_53_UDP_PROTO": "udp",
        "MY_DB_PORT_53_UDP_PORT": "53", "MY_DB_PORT_53_UDP_ADDR": "10.43.0.20"}
    assert ctr.service_environment([service("headless", "shop", "None", [{"port": 80}])]) == {}


@pytest.mark.parametrize("links, expected", [(None, {"KUBERNETES", "WEB", }),
                                             (True, {"KUBERNETES", "WEB"}),
                                             (False, {"KUBERNETES"})])
async def test_service_links_choose_the_pods_namespace(links, expected):
    spec = {} if links is None else {"enableServiceLinks": links}
    p = pod(namespace="shop", containers=[container()], **spec)
    services = [KUBERNETES, service("web", "shop", "10.43.0.7", [{"port": 80}]),
                service("other", "elsewhere", "10.43.0.8", [{"port": 80}])]
    env = await ctr.environment(p, p["spec"]["containers"][0], source=ctr.NoConfigSource(),
                                pod_ips=[], host_ips=[], allocatable={}, services=services)
    assert {k.rsplit("_SERVICE_HOST", 1)[0] for k in env if k.endswith("_SERVICE_HOST")} \
        == expected
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"


async def test_values_expand_service_variables_and_win_over_them():
    c = container(env=[{"name": "URL", "value": "https://$(KUBERNETES_SERVICE_HOST):"
                                                "$(KUBERNETES_SERVICE_PORT)"},
                       {"name": "KUBERNETES_SERVICE_PORT", "value": "8443"}])
    p = pod(containers=[c])
    env = await ctr.environment(p, c, source=ctr.NoConfigSource(), pod_ips=[], host_ips=[],
                                allocatable={}, services=[KUBERNETES])
    assert env["URL"] == "https://10.43.0.1:443"
    assert env["KUBERNETES_SERVICE_PORT"] == "8443"


async def test_services_not_listed_yet_are_a_config_error():
    c = container()
    with pytest.raises(ctr.ContainerConfigError, match="services have not yet been read"):
        await ctr.environment(pod(containers=[c]), c, source=ctr.NoConfigSource(),
                              pod_ips=[], host_ips=[], allocatable={}, services=None)


async def test_env_from_with_prefix_skips_invalid_names_with_an_event():
    class Source(ctr.NoConfigSource):
        async def config_map(self, namespace, name):
            return {"data": {"1badkey": "x", "good": "yes", "2alsobad": "y"}}

        async def secret(self, namespace, name):
            return {"data": {"token": base64.b64encode(b"s3cret").decode()}}

    warnings = []
    c = container(envFrom=[{"configMapRef": {"name": "myconfig"}},
                           {"prefix": "S_", "secretRef": {"name": "mysecret"}}])
    env = await ctr.environment(pod(containers=[c]), c, source=Source(), pod_ips=[],
                                host_ips=[], allocatable={},
                                warn=lambda *w: warnings.append(w))
    assert env == {"good": "yes", "S_token": "s3cret"}
    assert warnings == [("InvalidEnvironmentVariableNames",
                         "Keys [1badkey, 2alsobad] from the EnvFrom configMap default/myconfig "
                         "were skipped since they are considered invalid environment "
                         "variable names.")]


# ---- on the node ----------------------------------------------------------------------


@pytest.fixture
async def node(tmp_path):
    n = await make_node(tmp_path)
    yield n
    await n.kubelet.stop()


def env_of(node, name: str = "app") -> dict:
    [c] = node.containers(name)[-1:]
    return {kv.key: kv.value for kv in c.config.envs}


async def test_a_missing_key_keeps_the_container_waiting_until_it_appears(node):
    await node.client.create(resources.CONFIGMAPS, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
        "data": {"other": "1"}}, namespace="default")
    await node.client.create(resources.SERVICES, KUBERNETES, namespace="default")
    await node.settle()
    c = container(command=["echo", "$(COLOR)"], env=[
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k",
                                                         "optional": True}}}])
    await node.create(pod(containers=[c]))
    await node.settle()
    p = await node.get("web")
    waiting = p["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {"reason": "CreateContainerConfigError",
                       "message": "couldn't find key color in ConfigMap default/cfg"}
    assert ("Failed", "Error: couldn't find key color in ConfigMap default/cfg") \
        in await node.events()

    await node.client.patch(resources.CONFIGMAPS, "cfg", body={"data": {"color": "blue"}},
                            namespace="default")
    await node.advance(10)
    p = await node.get("web")
    assert "running" in p["status"]["containerStatuses"][0]["state"]
    env = env_of(node)
    assert env["COLOR"] == "blue" and "MAYBE" not in env
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert list(node.containers()[-1].config.command) == ["echo", "blue"]
