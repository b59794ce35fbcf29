"""One place that turns options into a backend, for the pytest plugin and the fuzzer alike."""

from __future__ import annotations

from kubeovn_conformance.backends.base import Backend


def make_backend(backend: str, mode: str, *, lab_profile: str | None = None, vlan_id: int = 100,
                 kubeconfig: str | None = None, kube_ovn_version: str | None = None,
                 run_id: str = "", lab_ovn: str | None = None, subnet: str | None = None,
                 agent_image: str | None = None) -> Backend:
    """`lab` (with a profile name, default the newest), `cluster` (a cluster's kubeconfig;
    `subnet` puts the test pods on that Kube-OVN Subnet, `agent_image` is the probe agent's
    image) or `kind` (the same on a cluster of scripts/cluster-up).
    An unknown profile is a ValueError with one line."""
    if backend == "lab":
        from kubeovn_conformance.backends.lab.backend import LabBackend
        from kubeovn_conformance.backends.lab.profile import DEFAULT, get_profile

        return LabBackend(mode=mode, profile=get_profile(lab_profile or DEFAULT.name), vlan_id=vlan_id,
                          ovn=lab_ovn)
    if backend not in ("kind", "cluster"):
        raise ValueError(f"unknown backend {backend!r} (lab, cluster or kind)")
    from kubeovn_conformance.backends.cluster import ClusterBackend, KindClusterBackend

    cls = KindClusterBackend if backend == "kind" else ClusterBackend
    return cls(kubeconfig=kubeconfig, mode=mode, kube_ovn_version=kube_ovn_version or "unknown",
               run_id=run_id, subnet=subnet, image=agent_image)


def profile_and_version(backend: str, lab_profile: str | None,
                        kube_ovn_version: str | None) -> tuple[str, str]:
    """(profile name, version) as records carry them: on the lab the profile's full name and
    `lab:<tag>`; on kind no profile and the version given."""
    if backend != "lab":
        return "", kube_ovn_version or "unknown"
    from kubeovn_conformance.backends.lab.profile import DEFAULT, get_profile

    profile = get_profile(lab_profile or DEFAULT.name)
    return profile.name, f"lab:{profile.tag}"
