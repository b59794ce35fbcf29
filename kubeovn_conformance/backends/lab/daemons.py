"""Private OVS and OVN daemons for the lab: one directory per lab, nothing shared.

Every daemon gets explicit socket, pidfile, unixctl and log paths inside the lab directory,
and every ctl call passes the private socket, so a system OVS (if any) is never touched.
ovs-vswitchd runs inside its own network namespace: the netdev bridges' tap devices and the
host ends of the pod veths live there, so two labs never collide on interface names and
deleting that namespace removes them all.

A state file (state.json) records what the lab created (namespaces, agent pids, who
started it) so `stop()` can clean up after a crash or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubeovn_conformance.backends.base import InfraError
from kubeovn_conformance.signals import shielded

DEFAULT_BASE = Path("/run/kubeovn-conformance-lab")
NETNS_PREFIX = "kocl"
PROVIDER_NETWORK = "provider"
PROVIDER_BRIDGE = "br-provider"

# Binary -> Debian package that ships it, for a helpful message when one is missing.
REQUIRED_BINARIES = {
    "ovsdb-tool": "openvswitch-switch",
    "ovsdb-server": "openvswitch-switch",
    "ovs-vswitchd": "openvswitch-switch",
    "ovs-vsctl": "openvswitch-switch",
    "ovs-ofctl": "openvswitch-switch",
    "ovs-appctl": "openvswitch-switch",
    "ovn-northd": "ovn-central",
    "ovn-nbctl": "ovn-central",
    "ovn-sbctl": "ovn-central",
    "ovn-controller": "ovn-host",
    "ethtool": "ethtool",
    "ip": "iproute2",
    "nsenter": "util-linux",
}
SCHEMAS = {
    "vswitch": Path("/usr/share/openvswitch/vswitch.ovsschema"),
    "nb": Path("/usr/share/ovn/ovn-nb.ovsschema"),
    "sb": Path("/usr/share/ovn/ovn-sb.ovsschema"),
}
# Stop order: consumers before the databases they read.
DAEMONS = ("ovn-controller", "ovn-northd", "ovs-vswitchd", "ovnsb", "ovnnb", "ovsdb-server")


class LabError(InfraError):
    """The lab could not be started, driven or stopped. The message says what and why."""


class LabAlreadyRunning(LabError):
    pass


# --------------------------------------------------------------------------- processes


def run(argv: Sequence[str], *, input: str | None = None, timeout: float = 60,
        env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command (argument list, never a shell); raise LabError with its stderr."""
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} not found: {install_hint([argv[0]])}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from None
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().replace("\n", " | ")
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}): {err}")
    return proc


def install_hint(binaries: Sequence[str]) -> str:
    pkgs = sorted({REQUIRED_BINARIES.get(b, b) for b in binaries})
    return f"apt-get install {' '.join(pkgs)}"


def missing_binaries(ovn: Any = None) -> list[str]:
    """Host binaries the lab needs and lacks; `ovn`: an OvnRuntime (default: host OVN)."""
    if ovn is not None:
        return list(ovn.missing())
    return [b for b in REQUIRED_BINARIES if shutil.which(b) is None]


def check_prerequisites(ovn: Any = None) -> None:
    """Raise LabError naming what to install (or that root is needed)."""
    if os.geteuid() != 0:
        raise LabError("the OVN lab needs root (network namespaces, veths, OVS)")
    missing = missing_binaries(ovn)
    if missing:
        hint = install_hint(missing) if ovn is None else \
            f"apt-get install {' '.join(sorted({ovn.required()[b] for b in missing}))}"
        raise LabError(f"missing {', '.join(missing)}: {hint}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is dead for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, an identity that
    survives pid reuse (a recorded pid may belong to another process after a crash)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def user_alive(entry: Any) -> bool:
    """Whether a process recorded as [pid, start time] still runs."""
    try:
        return start_time(int(entry[0])) == int(entry[1])
    except (TypeError, ValueError, IndexError):
        return False


def kill_recorded(entry: Any) -> None:
    """Kill a process recorded as [pid, start time] only if it is still that process."""
    try:
        pid, started = int(entry[0]), int(entry[1])
    except (TypeError, ValueError, IndexError):
        return
    if start_time(pid) == started:
        kill_pid(pid)


def kill_pid(pid: int, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reap it if it is our child."""
    if pid <= 1 or not pid_alive(pid):
        _reap(pid)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.02)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# --------------------------------------------------------------------------- netns


def netns_list() -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_add(name: str) -> None:
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def netns_delete(name: str) -> None:
    """Kill whatever runs in the namespace, then delete it (its interfaces go with it)."""
    if name not in netns_list():
        return
    pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        if pid.isdigit():
            kill_pid(int(pid))
    run(["ip", "netns", "delete", name], check=False)


def netns_exec(name: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", name, *argv]


# --------------------------------------------------------------------------- the lab


class Lab:
    """One private OVS + OVN installation under `base/name`.

    ovn: which OVN runs the daemons and ctl tools, "host" or a root's line ("25.03", the
    default; see ovnruntime). Every OVS/OVN command goes through `self.ovn.wrap`."""

    def __init__(self, name: str = "default", base: str | Path | None = None,
                 ovn: str | None = None) -> None:
        from kubeovn_conformance.backends.lab.ovnruntime import DEFAULT_OVN, runtime_for

        if not name or "/" in name or len(name) > 24 or name.startswith("."):
            raise LabError(f"bad lab name {name!r}: 1-24 characters, no '/', no leading '.'")
        self.name = name
        base_dir = Path(base or os.environ.get("KOCL_LAB_DIR") or DEFAULT_BASE)
        self.dir = base_dir / name
        # The OVN root's view for this lab (mount point; never inside self.dir, which
        # stop() removes recursively).
        self.root_view = base_dir / ".views" / name
        self.ovn = runtime_for(ovn or DEFAULT_OVN, self.root_view)
        self.ovs_sock = self.dir / "db.sock"
        self.nb_sock = self.dir / "ovnnb_db.sock"
        self.sb_sock = self.dir / "ovnsb_db.sock"
        self.state_file = self.dir / "state.json"
        self.switch_netns = self.netns_name("sw")

    # ---- names and paths

    def netns_name(self, suffix: str) -> str:
        """Namespaces of this lab: kocl-<lab>-<suffix>, suffix without '-'."""
        return f"{NETNS_PREFIX}-{self.name}-{suffix}"

    def owns_netns(self, ns: str) -> bool:
        prefix = f"{NETNS_PREFIX}-{self.name}-"
        return ns.startswith(prefix) and "-" not in ns[len(prefix):]

    def pidfile(self, daemon: str) -> Path:
        return self.dir / f"{daemon}.pid"

    def ctl(self, daemon: str) -> Path:
        if daemon == "ovn-controller":
            # It has no --unixctl option: the socket is OVN_RUNDIR/ovn-controller.<pid>.ctl.
            found = sorted(self.dir.glob("ovn-controller.*.ctl"))
            if found:
                return found[-1]
        return self.dir / f"{daemon}.ctl"

    @property
    def env(self) -> dict[str, str]:
        """Environment that points every OVS/OVN default path into the lab directory."""
        d = str(self.dir)
        return {**os.environ, "OVS_RUNDIR": d, "OVS_LOGDIR": d, "OVS_DBDIR": d,
                "OVS_SYSCONFDIR": d, "OVS_PKGDATADIR": "/usr/share/openvswitch",
                "OVN_RUNDIR": d, "OVN_LOGDIR": d, "OVN_DBDIR": d, "OVN_SYSCONFDIR": d}

    def _daemon_args(self, daemon: str) -> list[str]:
        args = [f"--pidfile={self.pidfile(daemon)}",
                f"--log-file={self.dir / (daemon + '.log')}", "--detach", "--no-chdir"]
        if daemon != "ovn-controller":
            args.append(f"--unixctl={self.ctl(daemon)}")
        return args

    # ---- state file

    def load_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def update_state(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        state = self.load_state()
        change(state)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self.state_file)  # atomic: a crash never leaves half a state file
        return state

    def record_netns(self, ns: str) -> None:
        self.update_state(lambda s: s.setdefault("netns", []).append(ns)
                          if ns not in s.get("netns", []) else None)

    def forget_netns(self, ns: str) -> None:
        self.update_state(lambda s: s.__setitem__(
            "netns", [n for n in s.get("netns", []) if n != ns]))

    def record_pid(self, key: str, pid: int) -> None:
        entry = [pid, start_time(pid) or 0]
        self.update_state(lambda s: s.setdefault("pids", {}).__setitem__(key, entry))

    def forget_pid(self, key: str) -> None:
        self.update_state(lambda s: s.get("pids", {}).pop(key, None))

    # ---- status

    def daemon_pids(self) -> dict[str, int | None]:
        """Pids from the pidfiles, None when missing or when the pid now belongs to a
        process that is not ours (its command line does not name this lab's directory)."""
        pids: dict[str, int | None] = {}
        for daemon in DAEMONS:
            try:
                pid = int(self.pidfile(daemon).read_text().strip())
            except (OSError, ValueError):
                pid = None
            pids[daemon] = pid if pid and f"{self.dir}/" in cmdline(pid) else None
        return pids

    def is_running(self) -> bool:
        return not self.dead_daemons()

    def dead_daemons(self) -> list[str]:
        """The daemons of this lab that do not run (crashed, killed, never started)."""
        return [d for d, p in self.daemon_pids().items() if p is None or not pid_alive(p)]

    def check_dataplane(self, when: str) -> None:
        """Raise LabError when a daemon of the lab is gone: whatever is observed on a dead or
        half-dead dataplane (probes time out, policies never arrive) is no verdict."""
        dead = self.dead_daemons()
        if dead:
            raise LabError(f"dataplane down {when}: {', '.join(dead)} not running "
                           f"(see {self.dir}/*.log)")

    def stray_pids(self) -> list[int]:
        """Processes of this lab however they were started: any process whose command line
        names the lab directory (daemons whose pidfile was lost, agents, ctl calls) or that
        runs chrooted in its OVN view. Never this process nor its ancestors."""
        mine = f"{self.dir}/"
        view = str(self.root_view)
        spared, pid = set(), os.getpid()
        while pid > 1 and pid not in spared:
            spared.add(pid)
            try:
                pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                break
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) in spared:
                continue
            pid = int(proc.name)
            root = ""
            with contextlib.suppress(OSError):
                root = os.readlink(proc / "root")
            if mine in cmdline(pid) or root == view or root.startswith(view + "/"):
                found.append(pid)
        return found

    def exists(self) -> bool:
        return (self.dir.exists() or self.root_view.exists() or self.switch_netns in netns_list()
                or bool(self.stray_pids()))

    @property
    def started_by(self) -> str:
        return str(self.load_state().get("started_by", ""))

    # ---- ctl wrappers: always the private sockets

    def vsctl(self, *args: str, timeout: float = 30) -> str:
        return run(self.ovn.wrap(["ovs-vsctl", f"--db=unix:{self.ovs_sock}", "--timeout=20", *args]),
                   timeout=timeout, env=self.env).stdout.strip()

    def nbctl(self, *args: str, timeout: float = 30) -> str:
        return run(self.ovn.wrap(["ovn-nbctl", f"--db=unix:{self.nb_sock}", *args]),
                   timeout=timeout, env=self.env).stdout.strip()

    def sbctl(self, *args: str, timeout: float = 30) -> str:
        return run(self.ovn.wrap(["ovn-sbctl", f"--db=unix:{self.sb_sock}", *args]),
                   timeout=timeout, env=self.env).stdout.strip()

    def ofctl(self, command: str, bridge: str = "br-int", *args: str) -> str:
        # Connect to the bridge's management socket in the lab run dir, not /var/run/openvswitch.
        return run(self.ovn.wrap(["ovs-ofctl", "-O", "OpenFlow15", command,
                                  f"unix:{self.dir / (bridge + '.mgmt')}", *args]),
                   env=self.env).stdout.strip()

    def appctl(self, daemon: str, *args: str) -> str:
        return run(self.ovn.wrap(["ovs-appctl", "-t", str(self.ctl(daemon)), *args]),
                   env=self.env).stdout.strip()

    def sync(self, timeout: float = 30) -> None:
        """Return once ovn-controller has applied every NB change made so far. On failure the
        error says which daemons are gone and what ovn-controller logged last, because the
        lab's directory (and its logs) go away with the teardown that follows."""
        try:
            self.nbctl(f"--timeout={int(timeout)}", "--wait=hv", "sync", timeout=timeout + 5)
        except LabError as e:
            dead = [d for d, p in self.daemon_pids().items() if p is None or not pid_alive(p)]
            tail = ""
            for daemon in ("ovn-controller", "ovs-vswitchd"):
                log = self.dir / f"{daemon}.log"
                with contextlib.suppress(OSError):
                    lines = [ln for ln in log.read_text().splitlines()[-200:]
                             if "|ERR|" in ln or "|EMER|" in ln or "|WARN|" in ln][-3:]
                    tail += f" {daemon}: {' / '.join(lines)[-400:]}" if lines else ""
            raise LabError(f"{e}; daemons gone: {', '.join(dead) or 'none'};{tail}") from None

    def in_switch_netns(self, argv: Sequence[str]) -> list[str]:
        return netns_exec(self.switch_netns, argv)

    # ---- start / stop

    def start(self, started_by: str = "cli") -> None:
        check_prerequisites(self.ovn)
        if self.is_running():
            raise LabAlreadyRunning(f"lab {self.name!r} is already running ({self.dir})")
        if self.exists():
            self.stop()  # leftovers of a crashed lab: clear them first
        info = self.ovn.info()  # builds the OVN root on first use, before anything is made
        self.dir.mkdir(parents=True, exist_ok=True)
        self.update_state(lambda s: s.update(name=self.name, started_by=started_by,
                                             started_at=time.time(), netns=[], pids={},
                                             ovn=self.ovn.choice, ovn_version=info.ovn,
                                             ovs_version=info.ovs))
        try:
            self.ovn.prepare(self.dir)
            self._start_databases()
            self._start_switch()
            self._start_ovn()
        except BaseException:
            self.stop()
            raise

    def _start_databases(self) -> None:
        for db, schema, sock, daemon, remote_extra in (
            ("conf.db", SCHEMAS["vswitch"], self.ovs_sock, "ovsdb-server",
             ["--remote=db:Open_vSwitch,Open_vSwitch,manager_options"]),
            ("ovnnb_db.db", SCHEMAS["nb"], self.nb_sock, "ovnnb", []),
            ("ovnsb_db.db", SCHEMAS["sb"], self.sb_sock, "ovnsb", []),
        ):
            run(self.ovn.wrap(["ovsdb-tool", "create", str(self.dir / db), str(schema)]), env=self.env)
            run(self.ovn.wrap(["ovsdb-server", str(self.dir / db), f"--remote=punix:{sock}",
                               *remote_extra, *self._daemon_args(daemon)]), env=self.env)
        self.vsctl("--no-wait", "init")

    def _start_switch(self) -> None:
        netns_add(self.switch_netns)
        self.record_netns(self.switch_netns)
        run(self.in_switch_netns(self.ovn.wrap(["ovs-vswitchd", f"unix:{self.ovs_sock}",
                                                *self._daemon_args("ovs-vswitchd")])), env=self.env)
        system_id = f"kocl-{self.name}"
        self.vsctl(
            "set", "open_vswitch", ".",
            f"external-ids:system-id={system_id}",
            f"external-ids:hostname={system_id}",
            f"external-ids:ovn-remote=unix:{self.sb_sock}",
            "external-ids:ovn-encap-type=geneve",
            "external-ids:ovn-encap-ip=127.0.0.1",
            "external-ids:ovn-bridge-datapath-type=netdev",
            f"external-ids:ovn-bridge-mappings={PROVIDER_NETWORK}:{PROVIDER_BRIDGE}",
            # Bind ovn-controller to our vswitchd's management socket explicitly.
            f"external-ids:ovn-bridge-remote=unix:{self.dir / 'br-int.mgmt'}",
            "--", "--may-exist", "add-br", "br-int",
            "--", "set", "bridge", "br-int", "datapath_type=netdev", "fail_mode=secure",
            "other-config:disable-in-band=true",
            "--", "--may-exist", "add-br", PROVIDER_BRIDGE,
            "--", "set", "bridge", PROVIDER_BRIDGE, "datapath_type=netdev",
        )

    def _start_ovn(self) -> None:
        run(self.ovn.wrap(["ovn-northd", f"--ovnnb-db=unix:{self.nb_sock}",
                           f"--ovnsb-db=unix:{self.sb_sock}", *self._daemon_args("ovn-northd")]),
            env=self.env)
        run(self.ovn.wrap(["ovn-controller", f"unix:{self.ovs_sock}",
                           *self._daemon_args("ovn-controller")]), env=self.env)
        self._wait_for_chassis()

    def _wait_for_chassis(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sbctl("--bare", "--columns=name", "find", "chassis"):
                self.sync(timeout=timeout)
                return
            time.sleep(0.1)
        raise LabError(f"ovn-controller registered no chassis within {timeout}s "
                       f"(see {self.dir / 'ovn-controller.log'})")

    def stop(self) -> None:
        """Kill agents and daemons, delete the lab's namespaces and directory. Idempotent.
        Ctrl-C or SIGTERM during it waits until it is done (signals.shielded)."""

        with shielded():
            self._stop()

    def _stop(self) -> None:
        state = self.load_state()
        for entry in (state.get("pids") or {}).values():
            kill_recorded(entry)
        namespaces = set(state.get("netns") or ())
        namespaces.update(ns for ns in netns_list() if self.owns_netns(ns))
        # Pod namespaces first, the switch namespace (vswitchd) with the daemons below.
        for ns in sorted(namespaces - {self.switch_netns}):
            netns_delete(ns)
        for pid in self.daemon_pids().values():
            if pid is not None:
                kill_pid(pid)
        # What the pidfiles no longer name (a daemon whose pidfile a crashed start removed or
        # overwrote, a ctl call hanging on a dead daemon): a full stop leaves no process.
        for pid in self.stray_pids():
            kill_pid(pid, grace=1.0)
        netns_delete(self.switch_netns)
        # The OVN root's view, whichever OVN this object was made for: found by its mounts.
        from kubeovn_conformance.backends.lab.ovnruntime import release_view

        release_view(self.root_view)
        shutil.rmtree(self.dir, ignore_errors=True)

    def status_line(self) -> str:
        if self.is_running():
            state = self.load_state()
            pods = len([n for n in state.get("netns", []) if n != self.switch_netns])
            ovn = f"OVN {state.get('ovn_version', '?')} ({state.get('ovn', '?')})"
            return (f"lab {self.name!r} running at {self.dir} on {ovn} (started by "
                    f"{state.get('started_by', '?')}, {pods} namespaces besides the switch)")
        if self.exists():
            return f"lab {self.name!r} is partly up (crashed?): run 'lab down' to clean up"
        return f"lab {self.name!r} is not running"
