"""Controller selection by upstream name and alias."""
import pytest

from pyk8s.controllers import manager


def test_select_accepts_upstream_names_and_aliases():
    assert manager.select(["deployment", "job-controller"]) == ["deployment-controller", "job-controller"]
    everything = manager.select(["*"])
    assert set(manager.WORKLOAD_CONTROLLERS) <= set(everything)
    assert "garbage-collector-controller" in everything
    assert manager.select(None) == list(manager.CONTROLLERS)


def test_select_rejects_unknown_controllers():
    with pytest.raises(ValueError, match='"nope" is not in the list of known controllers'):
        manager.select(["nope"])
