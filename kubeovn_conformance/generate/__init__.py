"""Generated cases: a covering array over named dimensions, each row a Case.

    dimensions.py  the dimensions, their named values, excluded pairs, corpus seed rows
    covering.py    a deterministic pairwise (mixed-strength) covering-array builder
    ground.py      the workload: namespaces, labelled pods with named ports, Services
    policies.py    a row's NetworkPolicies; steps.py its steps; rows.py rows and Cases

`cases()` is what suites/test_generated.py collects; `all_markers()` what the pytest plugin
registers (gen_<dimension>_<value>).
"""

from kubeovn_conformance.generate.rows import all_markers, case_id, cases, rows, to_case

__all__ = ["all_markers", "case_id", "cases", "rows", "to_case"]
