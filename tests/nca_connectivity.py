"""Run network-config-analyzer's connectivity map over many scenarios in one process.

Runs under the interpreter that has network-config-analyzer (PyPI, pinned in the Makefile's
separate venv: it pins PyYAML 6.0.2 exactly, which kubernetes 37 does not accept, so it
cannot share the project's venv). Usage: python nca_connectivity.py DIR; for every DIR/*.yaml
(namespaces, pods and policies of one scenario) it writes DIR/*.txt, NCA's
`txt_no_fw_rules` connectivity: one `src => dst : connections` line per allowed pair.
"""

import sys
from pathlib import Path

from nca.nca_cli import nca_main


def main(directory: str) -> int:
    failed = 0
    for manifest in sorted(Path(directory).glob("*.yaml")):
        out = manifest.with_suffix(".txt")
        status = nca_main(["--connectivity", str(manifest), "--ns_list", str(manifest), "--pod_list",
                           str(manifest), "--output_format", "txt_no_fw_rules", "--file_out", str(out),
                           "--return_0"])
        if status != 0 or not out.exists():
            print(f"{manifest}: nca exit status {status}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
