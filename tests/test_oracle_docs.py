"""The examples of the Kubernetes NetworkPolicy concept page
(kubernetes.io/docs/concepts/services-networking/network-policies/), each against a workload
chosen so that every clause of the example decides at least one verdict."""

from __future__ import annotations

import yaml

from kubeovn_conformance.model import Scenario, scenario_from_documents
from kubeovn_conformance.oracle import ALLOW, DENY, Oracle


def load(text: str) -> Scenario:
    return scenario_from_documents(("docs", d) for d in yaml.safe_load_all(text))


def pod(ns: str, name: str, labels: dict | None = None, ip: str | None = None,
        ports: tuple[tuple[int, str], ...] = ()) -> str:
    doc = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"namespace": ns, "name": name, "labels": labels or {}},
           "spec": {"containers": [{"name": "c", "ports": [
               {"containerPort": p, "protocol": proto} for p, proto in ports]}]}}
    if ip:
        doc["status"] = {"podIP": ip}
    return yaml.safe_dump(doc)


def ns(name: str, /, **labels: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": name, "labels": labels}})


def docs(*parts: str) -> str:
    return "\n---\n".join(parts)


def check(s: Scenario, table: dict[tuple[str, str, int, str], str]) -> None:
    """Compare a table {(client, dst, port, proto): verdict} with the oracle, all at once."""
    o = Oracle(s)
    got = {k: o.pod_verdict(s.pod(k[0]), s.pod(k[1]), k[2], k[3])[0] for k in table}
    assert got == table


# --------------------------------------------------------------------------- test-network-policy

TEST_NETWORK_POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except: [172.17.1.0/24]
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
"""


def _test_network_policy_scenario() -> Scenario:
    return load(docs(
        ns("default"), ns("myproject", project="myproject"), ns("elsewhere"),
        pod("default", "db", {"role": "db"}, "10.16.0.10", ((6379, "TCP"),)),
        pod("default", "frontend", {"role": "frontend"}, "10.16.0.11"),
        pod("default", "backend", {"role": "backend"}, "10.16.0.12"),
        pod("myproject", "anyone", {}, "10.16.1.20"),
        pod("elsewhere", "frontend", {"role": "frontend"}, "10.16.2.30"),
        pod("elsewhere", "in-block", {}, "172.17.5.5"),
        pod("elsewhere", "excepted", {}, "172.17.1.5"),
        pod("elsewhere", "in-10-0-0", {}, "10.0.0.5", ((5978, "TCP"),)),
        pod("elsewhere", "in-10-0-1", {}, "10.0.1.5", ((5978, "TCP"),)),
        TEST_NETWORK_POLICY))


def test_test_network_policy_ingress_sources():
    s = _test_network_policy_scenario()
    check(s, {
        ("default/frontend", "default/db", 6379, "TCP"): ALLOW,   # podSelector role=frontend
        ("myproject/anyone", "default/db", 6379, "TCP"): ALLOW,   # namespaceSelector project=myproject
        ("elsewhere/in-block", "default/db", 6379, "TCP"): ALLOW,  # ipBlock 172.17.0.0/16
        ("elsewhere/excepted", "default/db", 6379, "TCP"): DENY,   # except 172.17.1.0/24
        ("default/backend", "default/db", 6379, "TCP"): DENY,      # no peer matches
        # podSelector alone is the policy's namespace: a frontend elsewhere is not admitted
        ("elsewhere/frontend", "default/db", 6379, "TCP"): DENY,
    })


def test_test_network_policy_ingress_port_and_protocol():
    s = _test_network_policy_scenario()
    check(s, {
        ("default/frontend", "default/db", 6380, "TCP"): DENY,
        ("default/frontend", "default/db", 6379, "UDP"): DENY,
        ("myproject/anyone", "default/db", 80, "TCP"): DENY,
    })


def test_test_network_policy_egress():
    s = _test_network_policy_scenario()
    check(s, {
        ("default/db", "elsewhere/in-10-0-0", 5978, "TCP"): ALLOW,
        ("default/db", "elsewhere/in-10-0-0", 5979, "TCP"): DENY,
        ("default/db", "elsewhere/in-10-0-0", 5978, "UDP"): DENY,
        ("default/db", "elsewhere/in-10-0-1", 5978, "TCP"): DENY,  # outside 10.0.0.0/24
        ("default/db", "default/frontend", 5978, "TCP"): DENY,     # egress is isolated
    })


def test_test_network_policy_leaves_unselected_pods_open():
    s = _test_network_policy_scenario()
    check(s, {
        ("elsewhere/excepted", "default/frontend", 6379, "TCP"): ALLOW,
        ("default/frontend", "elsewhere/in-10-0-1", 80, "TCP"): ALLOW,
    })


# --------------------------------------------------------------------------- defaults

WORKLOAD = docs(ns("default"), ns("other"),
                pod("default", "a", {"app": "a"}), pod("default", "b", {"app": "b"}),
                pod("other", "c", {"app": "c"}))

DEFAULT_DENY_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""

ALLOW_ALL_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-ingress, namespace: default}
spec:
  podSelector: {}
  ingress:
  - {}
  policyTypes: [Ingress]
"""

DEFAULT_DENY_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Egress]
"""

ALLOW_ALL_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-egress, namespace: default}
spec:
  podSelector: {}
  egress:
  - {}
  policyTypes: [Egress]
"""

DEFAULT_DENY_ALL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-all, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"""

PAIRS = (("default/a", "default/b"), ("other/c", "default/a"), ("default/a", "other/c"))


def _pairs(*policies: str) -> dict[tuple[str, str], str]:
    s = load(docs(WORKLOAD, *policies))
    o = Oracle(s)
    return {(c, d): o.pod_verdict(s.pod(c), s.pod(d), 80, "TCP")[0] for c, d in PAIRS}


def test_default_deny_ingress():
    assert _pairs(DEFAULT_DENY_INGRESS) == {
        ("default/a", "default/b"): DENY, ("other/c", "default/a"): DENY,
        ("default/a", "other/c"): ALLOW}


def test_allow_all_ingress_overrides_default_deny_ingress():
    assert set(_pairs(ALLOW_ALL_INGRESS).values()) == {ALLOW}
    assert set(_pairs(DEFAULT_DENY_INGRESS, ALLOW_ALL_INGRESS).values()) == {ALLOW}


def test_default_deny_egress():
    assert _pairs(DEFAULT_DENY_EGRESS) == {
        ("default/a", "default/b"): DENY, ("other/c", "default/a"): ALLOW,
        ("default/a", "other/c"): DENY}


def test_allow_all_egress_overrides_default_deny_egress():
    assert set(_pairs(DEFAULT_DENY_EGRESS, ALLOW_ALL_EGRESS).values()) == {ALLOW}


def test_default_deny_all():
    assert set(_pairs(DEFAULT_DENY_ALL).values()) == {DENY}


def test_default_deny_all_with_allow_all_ingress_still_denies_egress():
    assert _pairs(DEFAULT_DENY_ALL, ALLOW_ALL_INGRESS) == {
        ("default/a", "default/b"): DENY, ("other/c", "default/a"): ALLOW,
        ("default/a", "other/c"): DENY}


# --------------------------------------------------------------------------- endPort

MULTI_PORT_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: multi-port-egress, namespace: default}
spec:
  podSelector:
    matchLabels: {role: db}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/24}
    ports:
    - protocol: TCP
      port: 32000
      endPort: 32768
"""


def test_end_port_example_allows_the_inclusive_range_inside_the_block():
    s = load(docs(pod("default", "db", {"role": "db"}, "10.16.0.10"),
                  pod("default", "web", {"role": "web"}, "10.16.0.11"),
                  pod("ext", "inside", {}, "10.0.0.9"), pod("ext", "outside", {}, "10.0.1.9"),
                  MULTI_PORT_EGRESS))
    check(s, {
        ("default/db", "ext/inside", 31999, "TCP"): DENY,
        ("default/db", "ext/inside", 32000, "TCP"): ALLOW,
        ("default/db", "ext/inside", 32400, "TCP"): ALLOW,
        ("default/db", "ext/inside", 32768, "TCP"): ALLOW,
        ("default/db", "ext/inside", 32769, "TCP"): DENY,
        ("default/db", "ext/inside", 32400, "UDP"): DENY,
        ("default/db", "ext/outside", 32400, "TCP"): DENY,
        ("default/web", "ext/outside", 32400, "TCP"): ALLOW,  # not role=db: not selected
    })


# --------------------------------------------------------------------------- AND vs OR

AND_PEER = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and, namespace: default}
spec:
  podSelector: {matchLabels: {role: server}}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {user: alice}
      podSelector:
        matchLabels: {role: client}
"""

OR_PEERS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: or, namespace: default}
spec:
  podSelector: {matchLabels: {role: server}}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {user: alice}
    - podSelector:
        matchLabels: {role: client}
"""

AND_OR_WORKLOAD = docs(
    ns("default"), ns("alice", user="alice"), ns("bob", user="bob"),
    pod("default", "server", {"role": "server"}),
    pod("default", "client", {"role": "client"}),
    pod("default", "other", {"role": "other"}),
    pod("alice", "client", {"role": "client"}),
    pod("alice", "other", {"role": "other"}),
    pod("bob", "client", {"role": "client"}))

CLIENTS = ("default/client", "default/other", "alice/client", "alice/other", "bob/client")


def _admitted(policy: str) -> set[str]:
    s = load(docs(AND_OR_WORKLOAD, policy))
    o = Oracle(s)
    server = s.pod("default/server")
    return {c for c in CLIENTS if o.pod_verdict(s.pod(c), server, 80, "TCP")[0] == ALLOW}


def test_namespace_and_pod_selector_in_one_element_is_and():
    # only role=client pods in namespaces labelled user=alice
    assert _admitted(AND_PEER) == {"alice/client"}


def test_namespace_and_pod_selector_as_two_elements_is_or():
    # every pod in alice's namespaces, or role=client pods in the policy's own namespace
    assert _admitted(OR_PEERS) == {"alice/client", "alice/other", "default/client"}


# --------------------------------------------------------------------------- namespace by name

BY_NAME = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-to-prod, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: prod
"""


def test_targeting_a_namespace_by_its_name_label():
    # `prod` carries no labels in the manifest; the API server's name label still matches.
    s = load(docs(ns("prod"), ns("prod-like", name="prod"),
                  pod("default", "app"), pod("prod", "db"), pod("prod-like", "db"), BY_NAME))
    check(s, {
        ("default/app", "prod/db", 5432, "TCP"): ALLOW,
        ("default/app", "prod-like/db", 5432, "TCP"): DENY,
    })
