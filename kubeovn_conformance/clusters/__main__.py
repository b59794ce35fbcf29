"""`python -m kubeovn_conformance.clusters`."""

import sys

from kubeovn_conformance.clusters.cli import main

sys.exit(main())
