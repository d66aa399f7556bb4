"""The hypothesis profile of the hostile-input suite.

`hardening` is what CI runs: derandomized (the same examples on every run, so a red build reproduces locally with
plain `pytest`), no example database (nothing written to the work tree), and no per-example deadline (a 64 KiB body
or a child-process round trip is slow by design, not a bug).

`hardening-explore` is for a person hunting for new failures: random seeds and ten times the examples, e.g.
`HARDENING_PROFILE=hardening-explore .venv/bin/python -m pytest tests/hardening`. A failure it finds prints the
falsifying example; turn that into an explicit case before fixing it.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "hardening",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    # Large and deeply nested inputs are the point of this suite, and so are the few examples that run a child
    # process: neither is a sign of a slow or wasteful strategy.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.register_profile("hardening-explore", parent=settings.get_profile("hardening"), derandomize=False)
