"""`python -m shared`: the command line (see shared/cli/main.py)."""

import io
import sys
from typing import cast

from shared.cli.main import main

if __name__ == "__main__":
    # Exchange's UTF-16 strings can hold a lone surrogate (a name served as "\ud800"): printing it to a strict UTF-8
    # stdout was a traceback with exit code 1, which reads as NonCompliant (found by tests/hardening). Escape it.
    cast(io.TextIOWrapper, sys.stdout).reconfigure(errors="backslashreplace")
    sys.exit(main())
