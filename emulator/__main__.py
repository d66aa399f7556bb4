"""`python -m emulator --scenario FILE [--port-file F]`: serve an emulated tenant until SIGINT/SIGTERM.

Prints `export NAME='value'` lines (managed identity) so a shell can `eval` them, plus the secret and
certificate alternatives as comments. `--port-file` receives a JSON document with the URLs once serving.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from typing import Any

from .emulator import Emulator


def shell_quote(value: str) -> str:
    """Always single-quoted, so the line reads the same for every value."""
    return "'" + value.replace("'", "'\\''") + "'"


def exports(env: dict[str, str]) -> list[str]:
    return [f"export {name}={shell_quote(value)}" for name, value in env.items()]


def write_port_file(path: str, emu: Emulator) -> None:
    """Written atomically (rename), so a poller never reads half a file."""
    info: dict[str, Any] = {
        "exchange_url": emu.exchange_url,
        "authority_url": emu.authority_url,
        "foreign_url": emu.foreign_url,
        "identity_endpoint": emu.identity_endpoint,
        "ingestion_url": emu.ingestion_url,
        "graph_url": emu.graph_url,
        "manage_url": emu.manage_url,
        "ca_bundle": emu.ca_bundle,
        "pid": os.getpid(),
        "env": emu.env("managed_identity"),
        "federated_env": emu.env("federated_identity"),  # many tenants: the multi-tenant app's environment
        "guest_tenants": [
            {"tenant_id": tid, "organization": emu.guest(tid).tenant.organization} for tid in emu.guest_tenant_ids
        ],
    }
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", required=True, help="scenario JSON file (see emulator/scenarios/)")
    parser.add_argument("--port-file", help="write the listener URLs and environment here as JSON once serving")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    emu = Emulator(args.scenario).start()
    try:
        print(f"# Mailbox Audit Guard emulator: tenant {emu.tenant_id}, Exchange at {emu.exchange_url}")
        print("\n".join(exports(emu.env("managed_identity"))))
        for mode, names in (
            ("secret", ("EXO_CLIENT_ID", "EXO_CLIENT_SECRET")),
            ("certificate", ("EXO_CLIENT_ID", "EXO_CERTIFICATE_PATH")),
        ):
            alternative = emu.env(mode)
            print(
                f"# {mode}: "
                + "; ".join(
                    [
                        f"export EXO_AUTH_MODE={shell_quote(mode)}",
                        *(f"export {n}={shell_quote(alternative[n])}" for n in names),
                    ]
                )
            )
        print("# serving until Ctrl-C / SIGTERM", flush=True)
        if args.port_file:
            write_port_file(args.port_file, emu)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
        if args.port_file:
            with contextlib.suppress(OSError):
                os.remove(args.port_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
