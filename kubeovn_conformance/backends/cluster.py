"""The cluster backend: the suite on a Kubernetes cluster running Kube-OVN that you already have
(`--backend cluster`); `--backend kind` is the same with kind's particulars.

Everything about objects, namespaces, probes and teardown is KindBackend's (kind.py); this
adds what a real cluster needs:

- `subnet`: every test pod lands on that Kube-OVN Subnet, by the pod annotation
  `ovn.kubernetes.io/logical_switch`. Why that mechanism of the three Kube-OVN offers:
  * the pod annotation is what the controller reads first when it picks a pod's subnet
    (kube-ovn v1.16.2 pkg/controller/pod.go:1796 `getPodDefaultSubnet`, the same check at
    v1.12.35 pod.go:1437, v1.13.15 :1501, v1.14.41 :1611, v1.15.24 :1666; the key is
    util.LogicalSwitchAnnotation, v1.16.2 pkg/util/const.go:109), and it needs no right beyond
    creating the pods themselves; a Subnet's `spec.namespaces` does not limit which pods may
    name it (v1.16.2 pod.go and pkg/webhook never read it for a pod; only webhook/subnet.go:46
    does, checking a Subnet against its custom VPC's namespaces);
  * a namespace annotation would not hold: the namespace controller rewrites
    `ovn.kubernetes.io/logical_switch` on every namespace to the subnets whose
    `spec.namespaces` list it, or the default subnet (v1.16.2 pkg/controller/namespace.go:214-222,
    `handleAddNamespace`);
  * adding the run's namespaces to the Subnet's `spec.namespaces` would need write access to a
    cluster-scoped object the user's own workloads depend on, for every run.
  hostNetwork pods are on no subnet, so they carry no annotation.
- SCTP: on kind the nodes are containers on this machine's kernel, so this machine decides;
  on a real cluster the nodes' kernels do, which pytest cannot see. SCTP cases run there; a
  node without SCTP makes the agent answer "error" for those targets, which the runner counts
  as an infra-error (cases.py Cell.outcome), never a verdict.
- `image`: the probe agent's image (`--agent-image`), for clusters that mirror images.

The checks before a run (the Subnet against `--mode`, the version from the controller's
image) are in cluster_preflight.py.
"""

from __future__ import annotations

from typing import Any

from kubeovn_conformance.backends.kind import DEFAULT_IMAGE, KindBackend
from kubeovn_conformance.model import Pod

LOGICAL_SWITCH_ANNOTATION = "ovn.kubernetes.io/logical_switch"
CLUSTER_BACKENDS = ("kind", "cluster")


class ClusterBackend(KindBackend):
    name = "cluster"

    def __init__(self, *args: Any, subnet: str | None = None, sctp: bool | None = True,
                 image: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, sctp=sctp, image=image or DEFAULT_IMAGE, **kwargs)
        self.subnet = subnet or None

    def pod_manifest(self, pod: Pod) -> dict[str, Any]:
        m = super().pod_manifest(pod)
        if self.subnet and not pod.host_network:
            m["metadata"].setdefault("annotations", {})[LOGICAL_SWITCH_ANNOTATION] = self.subnet
        return m


class KindClusterBackend(ClusterBackend):
    """`--backend kind`: a cluster made by scripts/cluster-up, whose nodes share this kernel."""

    name = "kind"

    def __init__(self, *args: Any, sctp: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, sctp=sctp, **kwargs)  # None: this machine's kernel decides
