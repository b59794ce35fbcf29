"""Kind clusters with Kube-OVN: the version matrix, rendered configs, and the cluster-up plan.

Facts come from clusters/versions.yaml (which Kube-OVN release runs on which kind and node
image, installed how) and clusters/chart-keys.yaml (which values keys each chart line has).
Everything is pure and offline except `run`, which executes a plan with argument lists (never
a shell), and `network`, which reads `docker network inspect`.

Modules, one direction of dependency:

    matrix       constants, ClusterError, the version matrix and chart keys
    history      the weekly history runs: the corpus's kind tags, derived from their line's row
    steps        Step (one command of a plan) and small helpers
    tools        pinned kind / kubectl / helm downloads
    network      docker network facts, the bridge and host firewall scripts
    render       kind config, Helm values, install.sh settings, underlay objects, record
    images       loading images into kind, with upstream's fallbacks
    plan         the cluster-up plan
    run          executing a plan, reusing a healthy cluster
    diagnostics  what collect-diagnostics needs from a run
    cli          `python -m kubeovn_conformance.clusters ...` (the scripts call it)

CLI (see `python -m kubeovn_conformance.clusters -h`):

    up MODE VERSION [--name N] [--vlan-id N] [--vlan-cidr C] [--dry-run [--network-json F]]
    plan MODE VERSION ...                 same as `up --dry-run`
    render-kind MODE VERSION [-o FILE]
    render-values MODE VERSION [--network-json F | --docker-network NAME] [--vlan-id N]
    render-install-sh MODE VERSION --script FILE -o FILE [...]
    render-objects underlay VERSION --network-json F [--vlan-id N]
    render-record MODE VERSION [-o FILE]
    network-facts NAME -o FILE            save `docker network inspect NAME`
    fetch-tool VERSION TOOL / tool-path VERSION TOOL
    matrix                                {"include": [...]} for a GitHub Actions matrix
    history-matrix [--entry ID] [--tag T] [--mode M] [--format json|lines|make]
    history-summary REPORTS [--entry ID]  re-check every history run's artifact (CI)
    default / tools VERSION / image VERSION / failing-probes RESULTS.jsonl

Errors are one line on stderr with exit status 2.
"""

from kubeovn_conformance.clusters.cli import main
from kubeovn_conformance.clusters.diagnostics import failing_probes
from kubeovn_conformance.clusters.images import load_image
from kubeovn_conformance.clusters.matrix import (
    CHART_KEYS_FILE,
    CLUSTERS_DIR,
    DEFAULT_CLUSTER_NAME,
    DEFAULT_SUBNET,
    DEFAULT_VLAN_CIDR,
    DOCKER_NETWORK,
    HELM_RELEASE,
    JOIN_SUBNET,
    KUBE_PROXY_MODE,
    MATRIX_FILE,
    MODES,
    NAMESPACE,
    POD_GATEWAY,
    POD_SUBNET,
    PROBE_IMAGE,
    PROVIDER_NAME,
    PY,
    RECORD_CONFIGMAP,
    REPO_ROOT,
    ROLLOUTS,
    SERVICE_SUBNET,
    VLAN_NAME,
    VLAN_NIC,
    WAIT_TIMEOUT,
    ClusterError,
    Matrix,
    VersionEntry,
    check_mode,
    check_vlan_id,
    load_chart_keys,
    load_matrix,
)
from kubeovn_conformance.clusters.network import (
    BRIDGE_SETUP_SCRIPT,
    HOST_RULES_SCRIPT,
    NetworkFacts,
    host_rules_argv,
    inspect_docker_network,
    load_network_json,
    parse_docker_network,
    vlan_interface,
)
from kubeovn_conformance.clusters.plan import Options, create_steps, install_steps, plan
from kubeovn_conformance.clusters.render import (
    UnderlayAddressing,
    dump_yaml,
    flatten_keys,
    patch_install_sh,
    record_manifest,
    render_install_sh_settings,
    render_kind_config,
    render_values,
    underlay_addressing,
    underlay_objects,
)
from kubeovn_conformance.clusters.run import existing_cluster_state, run_up
from kubeovn_conformance.clusters.steps import Step
from kubeovn_conformance.clusters.tools import (
    KUBECTL_KO_URL,
    default_bin_dir,
    fetch_tool,
    host_arch,
    tool_dirs,
    tool_path,
    tool_steps,
    tool_urls,
)

__all__ = [
    "BRIDGE_SETUP_SCRIPT",
    "CHART_KEYS_FILE",
    "CLUSTERS_DIR",
    "DEFAULT_CLUSTER_NAME",
    "DEFAULT_SUBNET",
    "DEFAULT_VLAN_CIDR",
    "DOCKER_NETWORK",
    "HELM_RELEASE",
    "HOST_RULES_SCRIPT",
    "JOIN_SUBNET",
    "KUBECTL_KO_URL",
    "KUBE_PROXY_MODE",
    "MATRIX_FILE",
    "MODES",
    "NAMESPACE",
    "POD_GATEWAY",
    "POD_SUBNET",
    "PROBE_IMAGE",
    "PROVIDER_NAME",
    "PY",
    "RECORD_CONFIGMAP",
    "REPO_ROOT",
    "ROLLOUTS",
    "SERVICE_SUBNET",
    "VLAN_NAME",
    "VLAN_NIC",
    "WAIT_TIMEOUT",
    "ClusterError",
    "Matrix",
    "NetworkFacts",
    "Options",
    "Step",
    "UnderlayAddressing",
    "VersionEntry",
    "check_mode",
    "check_vlan_id",
    "create_steps",
    "default_bin_dir",
    "dump_yaml",
    "existing_cluster_state",
    "failing_probes",
    "fetch_tool",
    "flatten_keys",
    "host_arch",
    "host_rules_argv",
    "inspect_docker_network",
    "install_steps",
    "load_chart_keys",
    "load_image",
    "load_matrix",
    "load_network_json",
    "main",
    "parse_docker_network",
    "patch_install_sh",
    "plan",
    "record_manifest",
    "render_install_sh_settings",
    "render_kind_config",
    "render_values",
    "run_up",
    "tool_dirs",
    "tool_path",
    "tool_steps",
    "tool_urls",
    "underlay_addressing",
    "underlay_objects",
    "vlan_interface",
]
