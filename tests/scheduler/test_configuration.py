"""KubeSchedulerConfiguration loading: defaults, merging, validation."""
from __future__ import annotations

import pytest

from pyk8s.scheduler.configuration import (DEFAULT_MULTI_POINT, ConfigurationError, PluginSet, load_configuration,
                                           load_configuration_file, merge_plugin_set)


def test_defaults_match_upstream():
    cfg = load_configuration()
    assert [p.scheduler_name for p in cfg.profiles] == ["default-scheduler"]
    assert cfg.percentage_of_nodes_to_score == 0
    assert (cfg.pod_initial_backoff_seconds, cfg.pod_max_backoff_seconds) == (1.0, 10.0)
    le = cfg.leader_election
    assert (le.leader_elect, le.lease_duration, le.renew_deadline, le.retry_period) == (True, 15.0, 10.0, 2.0)
    assert (le.resource_namespace, le.resource_name) == ("kube-system", "kube-scheduler")
    assert cfg.profiles[0].plugin_set("multiPoint").enabled == list(DEFAULT_MULTI_POINT)


def test_custom_entries_replace_defaults_in_place_and_append_others():
    merged = merge_plugin_set(PluginSet([("A", 1), ("B", 2), ("C", 3)]),
                              PluginSet([("X", 7), ("B", 9)], ["C"]))
    assert merged.enabled == [("A", 1), ("B", 9), ("X", 7)]
    assert merge_plugin_set(PluginSet([("A", 1)]), PluginSet([("X", 1)], ["*"])).enabled == [("X", 1)]


def test_file_with_two_profiles(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("""
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
podMaxBackoffSeconds: 20
leaderElection:
  leaderElect: false
  leaseDuration: 1m30s
profiles:
- schedulerName: default-scheduler
- schedulerName: no-scoring
  percentageOfNodesToScore: 100
  plugins:
    preScore:
      disabled: [{name: "*"}]
    score:
      disabled: [{name: "*"}]
""")
    cfg = load_configuration_file(str(path))
    assert cfg.percentage_of_nodes_to_score == 30 and cfg.pod_max_backoff_seconds == 20.0
    assert cfg.leader_election.leader_elect is False and cfg.leader_election.lease_duration == 90.0
    assert [p.scheduler_name for p in cfg.profiles] == ["default-scheduler", "no-scoring"]
    assert cfg.profiles[1].percentage_of_nodes_to_score == 100


@pytest.mark.parametrize("doc, message", [
    ({"profiles": [{}, {}]}, "Duplicate value: schedulerName"),
    ({"percentageOfNodesToScore": 101}, "must be in the range"),
    ({"podInitialBackoffSeconds": 5, "podMaxBackoffSeconds": 1}, "podMaxBackoffSeconds"),
    ({"kind": "Pod"}, 'no kind "Pod" is registered for version "kubescheduler.config.k8s.io/v1"'),
])
def test_invalid_documents(doc, message):
    with pytest.raises(ConfigurationError, match=message):
        load_configuration(doc)


@pytest.mark.parametrize("head, message", [
    # upstream's decoder errors (cmd/kube-scheduler/app/options tests)
    ("apiVersion: kubescheduler.config.k8s.io/unknown\nkind: KubeSchedulerConfiguration\n",
     'no kind "KubeSchedulerConfiguration" is registered for version "kubescheduler.config.k8s.io/unknown" '
     'in scheme "pkg/scheduler/apis/config/scheme/scheme.go:30"'),
    ("apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration\n",
     'no kind "KubeSchedulerConfiguration" is registered for version "kubescheduler.config.k8s.io/v1beta3"'),
    ("kind: KubeSchedulerConfiguration\n", "Object 'apiVersion' is missing in"),
])
def test_file_version_is_validated(tmp_path, head, message):
    path = tmp_path / "config.yaml"
    path.write_text(head + "profiles:\n- schedulerName: default-scheduler\n")
    with pytest.raises(ConfigurationError) as e:
        load_configuration_file(str(path))
    assert message in str(e.value)


def test_default_set_has_upstreams_volume_plugins_in_order():
    names = [name for name, _ in DEFAULT_MULTI_POINT]
    assert names[names.index("VolumeRestrictions"):names.index("PodTopologySpread")] == [
        "VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding", "VolumeZone"]
