"""Fakes of docker, kind, kubectl, kubectl-ko and helm for the rehearsal (tests/test_rehearsal.py),
one script behind a wrapper per name. They keep the machine's state in $FAKE_STATE: the kind
clusters that exist (a directory each, holding the record `kubectl apply` stored), a log of every
call, and the machine's memory in $KOC_MEMINFO: 8 GiB, 7.5 available with no cluster, 4.5 GiB
held by each cluster (two kind nodes with Kube-OVN). `kind create cluster` hands out the fake API
server's kubeconfig ($FAKE_KUBECONFIG)."""

from __future__ import annotations

import stat
from pathlib import Path

from kubeovn_conformance import clusters as c

TOOLS = ("docker", "kind", "kubectl", "kubectl-ko", "helm", "curl")
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "docker-network-kind.json"

FAKE = r'''
import json, os, shutil, sys
from pathlib import Path

STATE = Path(os.environ["FAKE_STATE"])
CLUSTERS = STATE / "clusters"
GIB = 1024 * 1024  # kB


def meminfo():
    held = 4.5 * len(list(CLUSTERS.iterdir())) if CLUSTERS.is_dir() else 0
    avail = int((7.5 - held) * GIB)
    Path(os.environ["KOC_MEMINFO"]).write_text(
        f"MemTotal:        {8 * GIB} kB\nMemFree:         {avail // 2} kB\nMemAvailable:    {avail} kB\n")


def opt(args, flag, default=""):
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else default


def main(name, args):
    CLUSTERS.mkdir(parents=True, exist_ok=True)
    with (STATE / "calls.log").open("a") as log:
        log.write(" ".join([name, *args]) + "\n")
    two = args[:2]
    if name == "kind":
        if two == ["get", "clusters"]:
            for d in sorted(CLUSTERS.iterdir()):
                print(d.name)
        elif two == ["create", "cluster"]:
            (CLUSTERS / opt(args, "--name", "kind")).mkdir()
            shutil.copyfile(os.environ["FAKE_KUBECONFIG"], opt(args, "--kubeconfig"))
            meminfo()
        elif two == ["delete", "cluster"]:
            shutil.rmtree(CLUSTERS / opt(args, "--name", "kind"), ignore_errors=True)
            meminfo()
        elif two == ["export", "kubeconfig"]:
            if not (CLUSTERS / opt(args, "--name", "kind")).is_dir():
                return 1
            shutil.copyfile(os.environ["FAKE_KUBECONFIG"], opt(args, "--kubeconfig"))
        elif two == ["get", "nodes"]:
            print("kube-ovn-control-plane\nkube-ovn-worker")
        elif two == ["export", "logs"]:
            Path(args[2]).mkdir(parents=True, exist_ok=True)
            (Path(args[2]) / "kind.log").write_text("fake kind logs\n")
        return 0
    if name == "kubectl":
        cluster = CLUSTERS / Path(opt(args, "--kubeconfig", "x/kube-ovn/kubeconfig")).parent.name
        record = cluster / "record.yaml"
        if "get" in args and "configmap" in args:
            if not record.is_file():
                print("Error from server (NotFound): configmaps not found", file=sys.stderr)
                return 1
            import yaml
            print(json.dumps(yaml.safe_load(record.read_text())))
        elif "apply" in args and opt(args, "-f").endswith("cluster-record.yaml"):
            shutil.copyfile(opt(args, "-f"), record)
        elif "get" in args:
            print(f"fake kubectl {' '.join(args)}")
        return 0
    if name == "docker":
        if args[:3] == ["network", "inspect", "kind"]:
            sys.stdout.write(Path(os.environ["FAKE_NETWORK_JSON"]).read_text())
        elif args[:1] == ["save"]:
            sys.stdout.write("image bytes\n")
        elif args[:1] == ["exec"]:
            sys.stdin.read()
        return 0
    return 0  # helm, kubectl-ko, curl: nothing to say


sys.exit(main(sys.argv[1], sys.argv[2:]))
'''


def _exe(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)


def install(fakes: Path, bin_dir: Path, python: Path, versions: list[str]) -> None:
    """The fakes on PATH (`fakes`) and as the pinned tools of `versions` in `bin_dir`, so that
    cluster-up fetches nothing."""
    script = fakes / "fake.py"
    _exe(script, FAKE)
    for tool in TOOLS:
        _exe(fakes / tool, f'#!/bin/sh\nexec {python} {script} {tool} "$@"\n')
    m = c.load_matrix()
    for v in versions:
        entry = m.entry(v)
        pinned = {name: ver for name, (ver, _, _) in c.tool_urls(m, entry, c.host_arch()).items()}
        pinned["kubectl-ko"] = entry.version
        for name, ver in pinned.items():
            _exe(c.tool_path(bin_dir, name, ver), f'#!/bin/sh\nexec {python} {script} {name} "$@"\n')


def env(fakes: Path, bin_dir: Path, state: Path, kubeconfig: Path, home: Path) -> dict[str, str]:
    state.mkdir(parents=True, exist_ok=True)
    (state / "meminfo").write_text("MemTotal:        8388608 kB\nMemFree:         3932160 kB\n"
                                   "MemAvailable:    7864320 kB\n")  # 8 GiB, 7.5 available
    return {"PATH": f"{fakes}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "KOC_BIN_DIR": str(bin_dir), "KOC_MEMINFO": str(state / "meminfo"), "FAKE_STATE": str(state),
            "FAKE_KUBECONFIG": str(kubeconfig), "FAKE_NETWORK_JSON": str(FIXTURE)}
