"""pytest hook for runs on a cluster (`--backend cluster`, `--backend kind`): the preflight of
backends/cluster_preflight.py, once per process before collection, so a wrong `--mode` or a
missing Subnet stops the run with one line before anything is created, and the version read
from the cluster is in the test ids, the records and the known-issue matching alike.

Loaded by pytest_plugin.py (`pytest_plugins`). xdist workers run it too: they parse the
command line again and do not inherit options set here, and their test ids must match the
controller's.
"""

from __future__ import annotations

import pytest

from kubeovn_conformance.backends.cluster import CLUSTER_BACKENDS
from kubeovn_conformance.backends.cluster_preflight import PreflightError, preflight


def _option(config: pytest.Config, name: str) -> object:
    try:
        return config.getoption(name)
    except ValueError:  # the plugin that declares it is not loaded
        return None


def pytest_configure(config: pytest.Config) -> None:
    from kubeovn_conformance.pytest_plugin import _uses_suites

    backend = _option(config, "--backend")
    if backend not in CLUSTER_BACKENDS or not _uses_suites(config) or config.option.collectonly:
        return
    given = _option(config, "--kube-ovn-version")
    try:
        found = preflight(_option(config, "--kubeconfig"), None,  # type: ignore[arg-type]
                          mode=str(_option(config, "--mode")),
                          subnet=_option(config, "--subnet"),  # type: ignore[arg-type]
                          version=given,  # type: ignore[arg-type]
                          # kind: the version is the row's, given by make e2e (as before)
                          read_version_from_cluster=backend == "cluster")
    except PreflightError as e:
        raise pytest.UsageError(f"--backend {backend}: {e}") from None
    if not given and found.version != "unknown":
        config.option.kube_ovn_version = found.version
        config._kubeovn_version_read = found.version  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> str | None:
    read = getattr(config, "_kubeovn_version_read", None)
    return f"kubeovn-conformance: Kube-OVN {read} (read from the kube-ovn-controller image)" \
        if read else None
