import sys

from kubeovn_conformance.report import main

sys.exit(main())
