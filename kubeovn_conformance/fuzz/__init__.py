"""The fuzzer: random single-state scenarios from a seed (draw), run through the runner,
the first failing one shrunk to a minimal scenario that fails in the same cell (shrink),
and written as a manifest file that reproduces it on its own (output).

`kubeovn-conformance fuzz` is the front door (fuzz/cli.py); `pytest --case-file FILE`
runs such a file as one case (pytest_plugin.py, with fuzz/case.py).
"""
