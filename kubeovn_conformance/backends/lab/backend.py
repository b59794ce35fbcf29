"""The OVN lab backend: real OVN on network namespaces, no Docker, no Kubernetes.

The backend plays kube-ovn-controller (logical ports, load balancers, and through
`translate` the NetworkPolicy ACLs) and kubelet (a namespace and a probe agent per pod).
It attaches to a lab started with `kubeovn-conformance lab up` when one runs (and leaves
its daemons up), otherwise it starts one and stops it again in teardown().
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kubeovn_conformance import agent
from kubeovn_conformance.backends.base import (
    Backend,
    InfraError,
    Observation,
    Target,
    parse_observations,
)
from kubeovn_conformance.backends.lab import cluster_support, cluster_sync, sync
from kubeovn_conformance.backends.lab import topology as topo
from kubeovn_conformance.backends.lab.daemons import (
    Lab,
    LabError,
    check_prerequisites,
    kill_pid,
    kill_recorded,
    netns_delete,
    start_time,
    user_alive,
)
from kubeovn_conformance.backends.lab.ovnruntime import FLUSHES, datapath_flushes
from kubeovn_conformance.model import Pod, Scenario
from kubeovn_conformance.signals import shielded

MODES = ("overlay", "underlay")
AGENT_READY_TIMEOUT = 15.0
PROBE_GRACE = 20.0  # beyond the probe timeout: interpreter start-up, netns exec, output


def kernel_has_sctp() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


def in_netns(netns: str) -> list[str]:
    """argv prefix that runs a command in a lab namespace. nsenter only switches the network
    namespace; `ip netns exec` also builds a mount namespace, which costs more per call."""
    return ["nsenter", f"--net=/run/netns/{netns}"]


class LabBackend(Backend):
    name = "lab"
    # Every deny costs two probe timeouts (runner.py), so the timeout sets the pace. Measured
    # on a 2-core machine over the upstream e2e suite (1,198 probes): connects answered in
    # 7.8 ms median, 58.7 ms p99, 67 ms max; 0.5 s keeps a 7x margin.
    probe_timeout = 0.5

    def __init__(self, mode: str = "overlay", *, lab_name: str | None = None,
                 lab_dir: str | Path | None = None, vlan_id: int = 100, profile: Any = None,
                 lb_on_underlay: bool | None = None, python: str = sys.executable,
                 sync_timeout: float = 30.0, nb_schema: str | Path | None = None,
                 ovn: str | None = None) -> None:
        """mode: overlay | underlay. vlan_id: the underlay's VLAN tag (0 = untagged).
        ovn: which OVN runs the lab, "host" or "25.03" (the default: a Debian 13 root,
        built on first use; see ovnruntime).
        profile: a translate Profile (kubeovn_conformance.backends.lab.profile), passed to
        the policy translation; None means its default. lb_on_underlay: attach the Service
        load balancers to the underlay switch; None takes profile.lb_on_underlay (else True).
        lab_name: default KOCL_LAB_NAME, else "default" (a test's lab of its own).
        lab_dir: base directory of labs (default /run/kubeovn-conformance-lab).
        nb_schema: decide ACL tiers from this OVN_Northbound schema file instead of the
        running OVN's (tests): with tiers, NetworkPolicy ACLs go in the profile's tier and
        cluster-scoped policies can run (cluster_support.py)."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        self.vlan_id = vlan_id
        self.profile = profile
        if lb_on_underlay is None:
            lb_on_underlay = getattr(profile, "lb_on_underlay", True)
        self.lb_on_underlay = bool(lb_on_underlay)
        self.python = python
        self.sync_timeout = sync_timeout
        self.lab = Lab(lab_name or os.environ.get("KOCL_LAB_NAME") or "default", lab_dir, ovn)
        self.subnet = topo.SUBNETS[mode]
        self.kube_ovn_version = f"lab:{getattr(profile, 'tag', 'default')}"
        self.supports_sctp = kernel_has_sctp()
        # A schema file to decide ACL tiers from instead of the running OVN's (tests).
        self._nb_schema = Path(nb_schema) if nb_schema else None
        self._cluster: cluster_sync.ClusterApplied | None = None
        self._skips: dict[str, str | None] = {}
        self._owns_lab = False
        self._claimed = False
        self._ports: dict[str, topo.PodPort] = {}
        self._agents: dict[str, subprocess.Popen] = {}
        self._scenario: Scenario | None = None
        self._vips: dict[str, dict[str, str]] | None = None
        self._applied: sync.Applied | None = None
        self._next_index = 0

    # ------------------------------------------------------------------ OVN

    @property
    def ovn_version(self) -> str:
        """`ovn-nbctl --version` of the OVN this lab runs (builds the root on first use)."""
        return self.lab.ovn.info().ovn

    @property
    def acl_tiers(self) -> bool:
        """The OVN has ACL tiers and the `pass` action (23.06+): Kube-OVN's tier layout
        (NetworkPolicy in tier 2, cluster-scoped policies in 1 and 3) can be reproduced.
        Without them NetworkPolicy ACLs go in tier 0 and cluster-scoped cases are skipped."""
        if self._nb_schema is not None:
            return cluster_support.nb_schema_has_acl_tiers(self._nb_schema)
        info = self.lab.ovn.info()
        return info.acl_tiers and info.acl_pass

    @property
    def nb_schema(self) -> str:
        """What the tier decision was read from, for messages."""
        return str(self._nb_schema or f"the northbound schema of OVN {self.ovn_version}")

    # ------------------------------------------------------------------ life cycle

    def setup(self, workload: Scenario) -> Scenario:
        try:
            return self._setup(workload)
        except BaseException:
            # Ctrl-C or a failure half way: leave nothing behind (the state file covers
            # the case where even this does not run).
            with contextlib.suppress(Exception):
                self.teardown()
            raise

    def _setup(self, workload: Scenario) -> Scenario:
        check_prerequisites(self.lab.ovn)
        if self.lab.is_running():
            self._owns_lab = False
            self._check_ovn()
            self._claim()
            self._clear_workload()  # leftovers of an earlier, interrupted run
        else:
            self.lab.start(started_by="backend")
            self._owns_lab = True
            self._claim()
        topo.build_switches(self.lab, self.vlan_id)
        pods = list(workload.pods)
        ports = topo.plan_pods(self.lab, pods, self.subnet)
        self._next_index = len(ports)
        self._ports = {p.key: p for p in ports}
        topo.add_pods(self.lab, ports)
        self._start_agents(pods)
        ips = {p.key: p.ip for p in ports}
        cluster_ips = topo.allocate_cluster_ips(workload.services)
        scenario = replace(workload.with_pod_ips(ips), policies=(), services=tuple(
            replace(s, cluster_ip=cluster_ips[s.key]) for s in workload.services))
        self._scenario = scenario
        self._apply_load_balancers(scenario)
        self.lab.sync(self.sync_timeout)
        return replace(scenario, policies=workload.policies)

    def reconcile(self, scenario: Scenario, between: Callable[[], None] | None = None) -> Scenario:
        if self._scenario is None:
            raise InfraError("reconcile() before setup()")
        # A daemon died since the last call: fail here, at once, so the runner tears this
        # workload down and the next case (or the retry) starts on a restarted lab.
        self.lab.check_dataplane("before applying a state")
        self._reconcile_workload(scenario)
        scenario = self._with_addresses(scenario)
        self._apply_load_balancers(scenario)  # label changes can change Service endpoints

        def settle() -> None:  # an intermediate controller state reaches the datapath
            self.lab.sync(self.sync_timeout)
            if between is not None:
                between()

        kwargs = {} if self.profile is None else {"profile": self.profile}
        lsps = {k: p.lsp for k, p in self._ports.items()}
        self._applied = sync.reconcile_policies(
            self.lab.nbctl, scenario, lsps, applied=self._applied, gateways=[self.subnet.gateway],
            between=settle, netpol_tier=self._netpol_tier(), others=self._cluster_states(scenario, lsps),
            **kwargs)
        self._scenario = scenario
        self.lab.sync(self.sync_timeout)
        for flush in self.flushes:
            self.lab.appctl("ovs-vswitchd", FLUSHES[flush])
        return scenario

    def _netpol_tier(self) -> int:
        """NetworkPolicy ACLs in Kube-OVN's tier where the NB has tiers, else tier 0."""
        if not self.acl_tiers:
            return 0
        from kubeovn_conformance.backends.lab.profile import DEFAULT

        return int((self.profile or DEFAULT).netpol_tier)  # no profile: the newest behaviour

    def _cluster_states(self, scenario: Scenario, lsps: dict[str, str]) -> Any:
        """(before, after) objects of the cluster-scoped policies for this reconcile."""
        if not scenario.cluster_policies and self._cluster is None:
            return None
        if scenario.cluster_policies and not self.acl_tiers:
            raise LabError(f"cluster-scoped policies need OVN ACL tiers; {self.nb_schema} has none")
        before = self._cluster.state(lsps.values()) if self._cluster else None
        kwargs = {} if self.profile is None else {"profile": self.profile}
        self._cluster = cluster_sync.next_applied(scenario, lsps, prev=self._cluster, **kwargs)
        after = self._cluster.state(lsps.values())
        from kubeovn_conformance.backends.lab.translate import OvnPolicyState

        return (before or OvnPolicyState()), after

    def skip_reason(self, case: Any) -> str | None:
        """Why this lab cannot run `case` (cluster-scoped policies), one line, or None."""
        if case.id not in self._skips:  # asked once per case and again for every pack
            self._skips[case.id] = cluster_support.skip_reason(
                cluster_support.case_cluster_policies(case), self.profile, self.acl_tiers, self.nb_schema)
        return self._skips[case.id]

    @property
    def flushes(self) -> tuple[str, ...]:
        """Datapath state dropped after every policy change, per OVN (ovnruntime.FLUSHES)."""
        return datapath_flushes(self.lab.ovn.choice)

    def set_profile(self, profile: Any) -> None:
        """Switch the Kube-OVN behaviour between cases: only while no policy is applied, so
        no object of the old profile outlives the switch."""
        if self._applied is not None and (self._applied.scenario.policies
                                          or self._applied.scenario.cluster_policies):
            raise InfraError("set_profile() while policies are applied")
        self.profile = profile
        self.kube_ovn_version = f"lab:{getattr(profile, 'tag', 'default')}"
        self._skips = {}

    def _reconcile_workload(self, scenario: Scenario) -> None:
        """Pods created or deleted by a step (kubelet's part); Services follow in
        _with_addresses and the load balancers."""
        wanted = {p.key for p in scenario.pods}
        gone = [p for k, p in self._ports.items() if k not in wanted]
        if gone:
            for p in gone:
                self._stop_agent(p.key)
            topo.remove_pods(self.lab, gone)
            for p in gone:
                del self._ports[p.key]
        new = [p for p in scenario.pods if p.key not in self._ports]
        if not new:
            return
        ports = topo.plan_pods(self.lab, new, self.subnet, first_index=self._next_index)
        self._next_index += len(new)
        self._ports.update({p.key: p for p in ports})
        topo.add_pods(self.lab, ports)
        self._start_agents(new)

    def probe(self, client: str, targets: Sequence[Target], timeout: float) -> list[Observation]:
        port = self._ports.get(client)
        if port is None:
            raise InfraError(f"probe from unknown pod {client!r}")
        if not targets:
            return []
        # A round on a dead or half-dead dataplane proves nothing: with ovs-vswitchd gone every
        # dial times out (a deny "passes", an allow "fails"); with ovn-controller gone the
        # flows are frozen. Checked before and after, so a daemon that dies during the round
        # makes the whole round an infra-error, never a verdict.
        self.lab.check_dataplane("before probing")
        observations = self._probe(port, targets, timeout)
        self.lab.check_dataplane("while probing")
        return observations

    def _probe(self, port: topo.PodPort, targets: Sequence[Target], timeout: float) -> list[Observation]:
        batch = [{"id": t.id, "host": t.host, "port": t.port, "protocol": t.protocol}
                 for t in targets]
        control = self._control_path(port.netns)
        if control.exists():
            return parse_observations(self._probe_via(control, batch, timeout, port.netns),
                                      [t.id for t in targets])
        argv = [*in_netns(port.netns), *self._agent_argv(), "probe", "--timeout", str(timeout)]
        try:
            proc = subprocess.run(argv, input=json.dumps(batch), capture_output=True, text=True,
                                  timeout=timeout + PROBE_GRACE, check=False)
        except subprocess.TimeoutExpired:
            raise InfraError(f"probe agent in {port.netns} did not finish") from None
        if proc.returncode != 0:
            raise InfraError(f"probe agent in {port.netns} exited {proc.returncode}: "
                             f"{proc.stderr.strip()[-500:]}")
        return parse_observations(proc.stdout, [t.id for t in targets])

    def _probe_via(self, control: Path, batch: list[dict], timeout: float, netns: str) -> str:
        """One batch through the pod's serving agent (no process per round): the agent dials
        from its namespace; the answer is what `agent.py probe` would print."""
        request = json.dumps({"timeout": timeout, "targets": batch}) + "\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout + PROBE_GRACE)
                s.connect(str(control))
                s.sendall(request.encode())
                s.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as e:
            raise InfraError(f"probe agent in {netns}: control socket: {e}") from None
        return b"".join(chunks).decode()

    def _control_path(self, netns: str) -> Path:
        return self.lab.dir / f"agent-{netns}.sock"

    def teardown(self, wait: bool | None = None) -> None:
        """Everything the lab made goes, always to the end (`wait` changes nothing here: the
        lab's removal is local and takes well under a second)."""
        with shielded():  # an interrupt meanwhile is raised once nothing is half removed
            self._teardown()

    def _teardown(self) -> None:
        errors: list[str] = []

        def step(fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except Exception as e:
                errors.append(str(e))

        step(self._stop_agents)
        if not self._claimed:
            pass  # never touch a lab another run is using (setup refused to attach)
        elif self.lab.is_running() and not self._owns_lab:
            step(topo.remove_pods, self.lab, list(self._ports.values()))
            step(topo.remove_load_balancers, self.lab)
            step(topo.clear_policies, self.lab)
            step(self._release)
        elif self._owns_lab or self.lab.started_by == "backend":
            step(self.lab.stop)
        self._claimed = False
        self._ports = {}
        self._scenario = None
        self._vips = None
        self._applied = None
        self._cluster = None
        self._owns_lab = False
        if errors:
            raise InfraError("teardown: " + "; ".join(errors))

    def collect_diagnostics(self, dest: Path, failing: Sequence[dict]) -> None:
        """NB contents, ACLs, load balancers, OpenFlow tables and agent logs."""
        dest.mkdir(parents=True, exist_ok=True)
        if not self.lab.is_running():
            return
        dumps = {
            "nb-show.txt": lambda: self.lab.nbctl("show"),
            "nb-acls.txt": lambda: self.lab.nbctl("list", "ACL"),
            "nb-port-groups.txt": lambda: self.lab.nbctl("list", "Port_Group"),
            "nb-address-sets.txt": lambda: self.lab.nbctl("list", "Address_Set"),
            "nb-lbs.txt": lambda: self.lab.nbctl("lb-list"),
            "sb-lflows.txt": lambda: self.lab.sbctl("lflow-list"),
            "br-int-flows.txt": lambda: self.lab.ofctl("dump-flows"),
        }
        for name, fetch in dumps.items():
            try:
                (dest / name).write_text(fetch() + "\n")
            except Exception as e:
                (dest / name).write_text(f"unavailable: {e}\n")
        for log in self.lab.dir.glob("*.log"):
            with contextlib.suppress(OSError):
                (dest / log.name).write_text(log.read_text()[-200_000:])

    # ------------------------------------------------------------------ helpers

    def pod_port(self, key: str) -> topo.PodPort:
        """Where a pod lives (namespace, logical port, IP): for diagnostics and tests."""
        return self._ports[key]

    def reproduce_command(self, client: str, target: Target, timeout: float = 2.0) -> str:
        """A copy-pasteable shell line that repeats one probe by hand (a pod a step created
        and the reset removed has no network namespace left to run it in)."""
        port = self._ports.get(client)
        if port is None:
            return f"(none: {client} was created by a step and is gone with its namespace)"
        body = json.dumps([{"id": target.id, "host": target.host, "port": target.port,
                            "protocol": target.protocol}])
        return (f"echo '{body}' | ip netns exec {port.netns} {self.python} "
                f"{agent.agent_path()} probe --timeout {timeout}")

    def _agent_argv(self) -> list[str]:
        # -I -S: the agent is standard library only; skipping site saves start-up time.
        return [self.python, "-I", "-S", agent.agent_path()]

    def _with_addresses(self, scenario: Scenario) -> Scenario:
        """The runner's scenario with the IPs this backend assigned (it may lack them); a
        Service new in this step gets the next free ClusterIP."""
        assert self._scenario is not None
        ips = {k: p.ip for k, p in self._ports.items()}
        known = {s.key: s.cluster_ip for s in self._scenario.services}
        services = tuple(replace(s, cluster_ip=s.cluster_ip or known.get(s.key))
                         for s in scenario.services)
        cips = topo.allocate_cluster_ips(services)
        return replace(scenario.with_pod_ips(ips), services=tuple(
            replace(s, cluster_ip=cips[s.key]) for s in services))

    def _lb_switches(self) -> list[str]:
        switches = [topo.OVERLAY.name]
        if self.lb_on_underlay:
            switches.append(topo.UNDERLAY.name)
        return switches

    def _apply_load_balancers(self, scenario: Scenario) -> None:
        vips = topo.lb_vips(scenario, {k: p.ip for k, p in self._ports.items()})
        if vips != self._vips:
            topo.set_load_balancers(self.lab, vips, self._lb_switches())
            self._vips = vips

    def _check_ovn(self) -> None:
        """Refuse to attach to a running lab of another OVN: its records would carry the
        wrong version, and the ctl tools would not be the daemons' own."""
        state = self.lab.load_state()
        running = state.get("ovn", "host")
        if running != self.lab.ovn.choice:
            raise LabError(f"lab {self.lab.name!r} runs OVN {state.get('ovn_version', '?')} "
                           f"({running}), this run asked for --lab-ovn {self.lab.ovn.choice}: "
                           f"stop it with 'kubeovn-conformance lab down' or ask for {running}")

    def _claim(self) -> None:
        """Mark the lab as used by this process; refuse one a live process uses: attaching
        would delete its pods. Parallel runs need distinct lab names."""
        user = self.lab.load_state().get("user")
        me = [os.getpid(), start_time(os.getpid()) or 0]
        if user and list(user) != me and user_alive(user):
            raise LabError(f"lab {self.lab.name!r} is in use by pid {user[0]}; "
                           "give this run another lab name")
        self.lab.update_state(lambda s: s.__setitem__("user", me))
        self._claimed = True

    def _release(self) -> None:
        self.lab.update_state(lambda s: s.pop("user", None))

    def _clear_workload(self) -> None:
        """Remove pods, LBs and policy objects a previous run left in an attached lab."""
        state = self.lab.load_state()
        for key, entry in list((state.get("pids") or {}).items()):
            if key.startswith("agent:"):
                kill_recorded(entry)
                self.lab.forget_pid(key)
        for sock in self.lab.dir.glob("agent-*.sock"):
            sock.unlink(missing_ok=True)
        stale = [ns for ns in state.get("netns", []) if ns.startswith(self.lab.netns_name("p"))]
        for ns in stale:
            netns_delete(ns)
            self.lab.forget_netns(ns)
        lsps = self.lab.nbctl("--bare", "--columns=name", "find", "logical_switch_port",
                              "external_ids:vendor=kube-ovn").split()
        if lsps:
            args: list[str] = []
            for lsp in lsps:
                args += ["--", "--if-exists", "lsp-del", lsp]
            self.lab.nbctl(*args[1:])
        ifaces = self.lab.vsctl("list-ports", "br-int").split()
        stale_ifaces = [i for i in ifaces if i.startswith("kp")]
        if stale_ifaces:
            vs: list[str] = []
            for i in stale_ifaces:
                vs += ["--", "--if-exists", "del-port", "br-int", i]
            self.lab.vsctl(*vs[1:])
        topo.remove_load_balancers(self.lab)
        topo.clear_policies(self.lab)

    def _start_agents(self, pods: Sequence[Pod]) -> None:
        """One `agent.py serve` per pod (serving its ports, and probe batches on a control
        socket); wait until every one says ready."""
        waiting: dict[str, subprocess.Popen] = {}
        for pod in pods:
            p = self._ports[pod.key]
            by_proto = {proto: ",".join(str(cp.port) for cp in pod.ports if cp.protocol == proto)
                        for proto in ("TCP", "UDP", "SCTP")}
            argv = [*in_netns(p.netns), *self._agent_argv(), "serve", "--name", pod.key,
                    "--tcp", by_proto["TCP"], "--udp", by_proto["UDP"], "--sctp", by_proto["SCTP"],
                    "--control", str(self._control_path(p.netns))]
            log = open(self.lab.dir / f"agent-{p.netns}.log", "ab")
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=log, start_new_session=True)
            finally:
                log.close()
            self._agents[pod.key] = proc
            self.lab.record_pid(f"agent:{pod.key}", proc.pid)
            waiting[pod.key] = proc
        self._wait_ready(waiting)

    def _wait_ready(self, waiting: dict[str, subprocess.Popen]) -> None:
        sel = selectors.DefaultSelector()
        for key, proc in waiting.items():
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ, key)
        deadline = time.monotonic() + AGENT_READY_TIMEOUT
        try:
            while sel.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    left = ", ".join(k.data for k in sel.get_map().values())
                    raise LabError(f"agents not ready within {AGENT_READY_TIMEOUT}s: {left}")
                for skey, _ in sel.select(remaining):
                    line = skey.fileobj.readline()  # type: ignore[union-attr]
                    if line.strip() == b"ready":
                        sel.unregister(skey.fileobj)
                        skey.fileobj.close()  # type: ignore[union-attr]
                    elif not line:
                        log = self.lab.dir / f"agent-{self._ports[skey.data].netns}.log"
                        tail = log.read_text()[-300:] if log.exists() else ""
                        raise LabError(f"agent of {skey.data} exited before ready: {tail.strip()}")
        finally:
            for skey in list(sel.get_map().values()):
                sel.unregister(skey.fileobj)
                skey.fileobj.close()  # type: ignore[union-attr]
            sel.close()

    def _stop_agents(self) -> None:
        for key in list(self._agents):
            self._stop_agent(key)

    def _stop_agent(self, key: str) -> None:
        proc = self._agents.pop(key, None)
        if proc is None:
            return
        kill_pid(proc.pid)
        with contextlib.suppress(Exception):
            proc.wait(timeout=2)
        port = self._ports.get(key)
        if port is not None:
            self._control_path(port.netns).unlink(missing_ok=True)
        if self.lab.state_file.exists():
            self.lab.forget_pid(f"agent:{key}")


__all__ = ["MODES", "LabBackend", "in_netns", "kernel_has_sctp", "parse_observations"]
