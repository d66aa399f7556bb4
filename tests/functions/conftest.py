"""Azurite for the functions tests: the timer archives its evidence in the app's storage account."""

from tests.report.conftest import azurite  # noqa: F401  (re-exported fixture)
