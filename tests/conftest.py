"""The suite's fixtures come from plain modules, loaded here as plugins (never imported from a conftest).

Helpers live in tests/support (tenant.py: the scenario builder; cli.py: running the command line in process or
as a child) and next to the tests that use them. Markers (pyproject.toml): `slow` for the long tests, `e2e` for
the ones that run a real child process; `pytest -m "not slow"` (`make quick`) is the inner loop, CI runs all.
"""

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.admin_sign_in",
    "tests.support.report_tools",
    "tests.activity.stores",
]
