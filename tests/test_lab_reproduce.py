"""The lab's reproduce line for a failing probe: a client a step created (and the reset
removed) has no network namespace left; the failure text must still be written (a KeyError
there once turned two known failures of generated cases into plain errors)."""

from __future__ import annotations

from kubeovn_conformance.backends.base import Target
from kubeovn_conformance.backends.lab.backend import LabBackend


def test_reproduce_line_for_a_pod_that_is_gone() -> None:
    line = LabBackend().reproduce_command("x/late", Target("1", "10.16.0.10", 80, "TCP"))
    assert "x/late" in line and "gone" in line
