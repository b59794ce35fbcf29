"""Root conftest: the suite's pytest options and fixtures live in the package's plugin, so
the unit tests (tests/) and the conformance cases (suites/) share one definition."""

pytest_plugins = ["kubeovn_conformance.pytest_plugin"]
