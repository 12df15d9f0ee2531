"""The node's pod egress masquerade rules (pure; packets are in tests/proxy/test_datapath)."""
import pytest

from pyk8s.cri import cni


def test_pod_traffic_leaving_the_cluster_range_is_masqueraded():
    text = cni.masquerade_rules(bridge="pyk8s0", pod_cidr="10.42.0.0/24")
    lines = text.splitlines()
    # The table is replaced atomically: create, delete, create in one transaction.
    assert lines[:3] == [lines[0], "delete table ip pyk8s-masq-pyk8s0", lines[0]]
    assert "type nat hook postrouting priority 100" in text
    assert ("ip saddr 10.42.0.0/24 ip daddr { 10.42.0.0/16, 10.43.0.0/16 } return"
            in text)
    assert "ip saddr 10.42.0.0/24 ip daddr 224.0.0.0/4 return" in text
    assert lines[-1].startswith(
        "add rule ip pyk8s-masq-pyk8s0 postrouting ip saddr 10.42.0.0/24 masquerade")


def test_a_pod_cidr_outside_the_cluster_range_stands_for_it():
    text = cni.masquerade_rules(bridge="b", pod_cidr="10.99.1.0/24")
    assert "ip daddr { 10.99.1.0/24, 10.43.0.0/16 } return" in text


def test_ipv6_is_refused():
    with pytest.raises(ValueError):
        cni.masquerade_rules(bridge="b", pod_cidr="fd00::/64", cluster_cidr="fd00::/48")
