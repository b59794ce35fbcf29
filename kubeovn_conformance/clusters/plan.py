"""The cluster-up plan: every command a run executes, in order, as argument lists. Building
it is pure; --dry-run prints it."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeovn_conformance.clusters.images import load_image
from kubeovn_conformance.clusters.matrix import (
    DEFAULT_CLUSTER_NAME,
    DEFAULT_SUBNET,
    DEFAULT_VLAN_CIDR,
    DOCKER_NETWORK,
    HELM_RELEASE,
    NAMESPACE,
    PROBE_IMAGE,
    PY,
    REPO_ROOT,
    ROLLOUTS,
    WAIT_TIMEOUT,
    ClusterError,
    Matrix,
    VersionEntry,
    check_mode,
    check_vlan_id,
)
from kubeovn_conformance.clusters.network import (
    BRIDGE_SETUP_SCRIPT,
    NetworkFacts,
    host_rules_argv,
    vlan_interface,
)
from kubeovn_conformance.clusters.render import (
    dump_yaml,
    patch_install_sh,
    record_manifest,
    render_install_sh_settings,
    render_kind_config,
    render_values,
    underlay_addressing,
)
from kubeovn_conformance.clusters.steps import Step, _rel, _write
from kubeovn_conformance.clusters.tools import default_bin_dir, host_arch, tool_path


@dataclass(frozen=True)
class Options:
    mode: str
    version: str
    name: str = DEFAULT_CLUSTER_NAME
    vlan_id: int = 0
    vlan_cidr: str = DEFAULT_VLAN_CIDR
    bin_dir: Path = field(default_factory=default_bin_dir)

    @property
    def workdir(self) -> str:
        # Relative to the repository root, where every step runs: printed plans stay readable.
        return f".cache/kind/{self.name}"

    @property
    def kubeconfig(self) -> str:
        return f"{self.workdir}/kubeconfig"



HOST_RULES_FILE = "host-rules.json"


def _vlan_args(o: Options) -> list[str]:
    if o.vlan_id == 0:
        return []
    return ["--vlan-id", str(o.vlan_id), "--vlan-cidr", o.vlan_cidr]


def create_steps(matrix: Matrix, o: Options) -> list[Step]:
    """Cluster creation up to the loaded image: needs no network facts."""
    entry = matrix.entry(o.version)
    kc = o.kubeconfig
    cfg = f"{o.workdir}/kind-config.yaml"
    cp = "node-role.kubernetes.io/control-plane"
    return [
        Step(
            [*PY, "render-kind", o.mode, o.version, "-o", cfg],
            action=_write(cfg, dump_yaml(render_kind_config(entry))),
        ),
        # No --wait: nodes stay NotReady until a CNI runs, so kind would wait forever.
        Step(["kind", "create", "cluster", "--name", o.name, "--config", cfg, "--kubeconfig", kc]),
        Step(
            ["kubectl", "--kubeconfig", kc, "label", "nodes", "-l", cp, "kube-ovn/role=master", "--overwrite"]
        ),
        # Kube-OVN's CI untaints the control plane so test pods land on both nodes; the
        # taint may already be gone (kubectl then fails with "not found"), hence allow_fail.
        Step(
            ["kubectl", "--kubeconfig", kc, "taint", "nodes", "-l", cp, f"{cp}:NoSchedule-"], allow_fail=True
        ),
    ] + [step for image in (entry.image, PROBE_IMAGE) for step in image_steps(o.name, image)]


def image_steps(cluster: str, image: str) -> list[Step]:
    """Pull on the host once, then into every node with upstream's fallbacks (images.py)."""
    return [
        Step(["docker", "pull", image]),
        Step([*PY, "load-image", "--name", cluster, image],
             action=lambda: load_image(cluster, image, host_arch()) and None),
    ]


def policy_api_steps(entry: VersionEntry, kc: str) -> list[Step]:
    """The cluster-scoped policy CRDs of the row's line, before Kube-OVN starts with
    ENABLE_ANP=true (upstream `kind-install-anp` applies them first too). Server-side: the
    CRDs are large and need no last-applied annotation."""
    if entry.policy_api is None:
        return []
    return [Step(["kubectl", "--kubeconfig", kc, "apply", "--server-side", "-f", url])
            for url in entry.policy_api.urls()]


def _ready_checks(kc: str, timeout: str) -> tuple[list[str], list[str]]:
    """What "healthy" means, for the install's waits and for reusing a cluster alike:
    every node Ready, and Kube-OVN's default subnet Ready."""
    wait = ["kubectl", "--kubeconfig", kc, "wait", "--for=condition=Ready"]
    return ([*wait, "nodes", "--all", f"--timeout={timeout}"],
            [*wait, f"subnet/{DEFAULT_SUBNET}", f"--timeout={timeout}"])


def install_steps(
    matrix: Matrix, o: Options, net: NetworkFacts | None, chart_keys: dict[str, Any] | None = None
) -> list[Step]:
    """From network facts to a ready, recorded cluster."""
    entry = matrix.entry(o.version)
    kc = o.kubeconfig
    netjson = f"{o.workdir}/network.json"
    steps: list[Step] = []
    if o.mode == "underlay":
        if net is None:
            raise ClusterError("underlay needs the docker network facts")
        steps.append(Step([*PY, "network-facts", DOCKER_NETWORK, "-o", netjson]))
        a = underlay_addressing(net, o.vlan_id, o.vlan_cidr)
        prefix = ipaddress.IPv4Network(a.cidr).prefixlen
        steps.append(
            Step(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--privileged",
                    "--network=host",
                    entry.image,
                    "bash",
                    "-ec",
                    BRIDGE_SETUP_SCRIPT,
                    "bridge-setup",
                    net.bridge,
                    str(o.vlan_id),
                    f"{a.gateway}/{prefix}",
                    vlan_interface(o.vlan_id),
                ]
            )
        )
        if o.vlan_id:
            # What cluster-down needs to remove the host's firewall accepts again.
            rules = f"{o.workdir}/{HOST_RULES_FILE}"
            record = {"image": entry.image, "vlan_cidr": a.cidr, "kind_subnet": str(net.subnet)}
            steps += [
                Step([*PY, "render-host-rules", o.mode, o.version, "--network-json", netjson,
                      *_vlan_args(o), "-o", rules],
                     action=_write(rules, json.dumps(record, indent=1) + "\n")),
                Step(host_rules_argv(entry.image, "add", a.cidr, str(net.subnet))),
            ]
    net_args = ["--network-json", netjson] if o.mode == "underlay" else []
    steps += policy_api_steps(entry, kc)
    if entry.install == "helm":
        vals = f"{o.workdir}/values.yaml"
        values = render_values(
            o.mode, entry, net, vlan_id=o.vlan_id, vlan_cidr=o.vlan_cidr, chart_keys=chart_keys
        )
        steps += [
            Step(
                [*PY, "render-values", o.mode, o.version, *net_args, *_vlan_args(o), "-o", vals],
                action=_write(vals, dump_yaml(values)),
            ),
            # upgrade --install: a half-installed release from an interrupted run is fixed,
            # not an error. No --wait: we wait on the workloads ourselves, with clear names.
            Step(
                [
                    "helm",
                    "upgrade",
                    "--install",
                    HELM_RELEASE,
                    matrix.chart,
                    "--repo",
                    matrix.helm_repo,
                    "--version",
                    entry.chart_version,
                    "--namespace",
                    NAMESPACE,
                    "--kubeconfig",
                    kc,
                    "-f",
                    vals,
                ]
            ),
        ]
    else:
        script = f"{o.workdir}/install.sh"
        patched = f"{o.workdir}/install-patched.sh"
        settings = render_install_sh_settings(o.mode, entry, net, vlan_id=o.vlan_id, vlan_cidr=o.vlan_cidr)

        ko = tool_path(o.bin_dir, "kubectl-ko", entry.version)

        def patch() -> None:
            text = (REPO_ROOT / script).read_text()
            ko.parent.mkdir(parents=True, exist_ok=True)
            _write(patched, patch_install_sh(text, settings["assignments"], str(ko.resolve())))()

        env = [f"{k}={v}" for k, v in sorted(settings["env"].items())]
        steps += [
            Step(["curl", "-fsSL", "--retry", "3", "-o", script, entry.install_sh_url]),
            Step(
                [
                    *PY,
                    "render-install-sh",
                    o.mode,
                    o.version,
                    *net_args,
                    *_vlan_args(o),
                    "--script",
                    script,
                    "--bin-dir",
                    _rel(o.bin_dir),
                    "-o",
                    patched,
                ],
                action=patch,
            ),
            # In the cluster's work directory: install.sh writes its manifests (about ten YAML
            # files) into the current directory. KUBECONFIG absolute for the same reason.
            Step(["env", "-C", o.workdir, *env, f"KUBECONFIG={REPO_ROOT / kc}", "bash",
                  Path(patched).name]),
        ]
    nodes_ready, subnet_ready = _ready_checks(kc, WAIT_TIMEOUT)
    steps.append(Step(nodes_ready))
    steps += [
        Step(["kubectl", "--kubeconfig", kc, "-n", NAMESPACE, "rollout", "status", w,
              f"--timeout={WAIT_TIMEOUT}"])
        for w in ROLLOUTS
    ]
    steps.append(Step(subnet_ready))
    rec = f"{o.workdir}/cluster-record.yaml"
    steps += [
        Step(
            [*PY, "render-record", o.mode, o.version, *_vlan_args(o), "-o", rec],
            action=_write(rec, dump_yaml(record_manifest(o.mode, entry, o.vlan_id))),
        ),
        Step(["kubectl", "--kubeconfig", kc, "apply", "-f", rec]),
    ]
    return steps


def plan(matrix: Matrix, o: Options, net: NetworkFacts | None) -> list[Step]:
    _check_options(matrix, o)
    return create_steps(matrix, o) + install_steps(matrix, o, net)



def _check_options(matrix: Matrix, o: Options) -> None:
    check_mode(o.mode)
    matrix.entry(o.version)
    check_vlan_id(o.vlan_id)
    if o.mode == "overlay" and o.vlan_id:
        raise ClusterError("--vlan-id applies to underlay only")

