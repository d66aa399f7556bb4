"""Plain helper modules for the tests; the fixture modules among them are loaded through `pytest_plugins`."""
