"""The tenants register: which customer tenants one deployment checks and watches, and their own policy settings.

A JSON list (AUDIT_TENANTS_FILE for the command line; the same entries as rows of the `tenants` table for the
Function App, see shared.runtime.tenants) of {"tenant_id", "organization", "cloud"?, "display_name"?, "settings"?}.
`settings` overrides only the audit policy settings (the `policy` group of shared.config.declaration), by their
variable names. Each entry is validated on its own: a bad one is reported by its position (from 1) and field and
left out; the others still run. A file that is not a JSON list of objects is a configuration error, as for the
exception register.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config.clouds import CLOUDS
from shared.config.declaration import BY_NAME, SETTINGS, Env

FIELDS = ("tenant_id", "organization", "cloud", "display_name", "settings")
# What a tenant may set for itself: the audit policy, nothing that reaches a credential, an endpoint or storage.
OVERRIDABLE = tuple(setting.name for setting in SETTINGS if setting.group == "policy")
TENANT_OWN = frozenset({"AUDIT_EXCEPTIONS_FILE", *(name for name in OVERRIDABLE if name.startswith("AUDIT_CANARY_"))})
CLOUD_ENDPOINTS = ("EXO_ENDPOINT", "IPPS_ENDPOINT", "EXO_AUTHORITY", "O365_MANAGEMENT_ENDPOINT", "GRAPH_ENDPOINT")
MAX_FILE_BYTES = 4 * 1024 * 1024  # thousands of tenants
MAX_TENANTS = 10_000
MAX_NAME_LENGTH = 256
MAX_VALUE_LENGTH = 1024
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9-]{1,63}\.)+[a-zA-Z]{2,63}$")


class TenantsFileError(ValueError):
    """The register as a whole is unusable (not a list of objects, unreadable, too large)."""


@dataclass(frozen=True)
class Tenant:
    """One customer tenant of the register: who it is and the environment overrides its runs are loaded with."""

    tenant_id: str
    organization: str
    cloud: str | None = None
    display_name: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """How the tenant is named to people and in telemetry: its display name, else its organization."""
        return self.display_name or self.organization

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment a run for this tenant is loaded from (one loader for every tenant): the deployment's,
        with this tenant's identity and policy overrides."""
        # What names one tenant's own objects is never inherited from the deployment: its written exceptions match
        # mailboxes by name and its canary is one tenant's mailbox; each tenant's entry names its own.
        env = {key: value for key, value in base.items() if key not in TENANT_OWN}
        env.update({**self.settings, "EXO_TENANT_ID": self.tenant_id, "EXO_ORGANIZATION": self.organization})
        if self.cloud is not None:
            env["EXO_CLOUD"] = self.cloud
            for key in CLOUD_ENDPOINTS:  # the deployment's hosts belong to its own cloud; the tenant's are derived
                env.pop(key, None)
        return env

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "organization": self.organization,
            "cloud": self.cloud,
            "display_name": self.display_name,
            "settings": dict(self.settings),
        }


@dataclass(frozen=True)
class Rejected:
    """An entry left out: its position (from 1), the field at fault, what is wrong, and its tenant id if readable."""

    position: int
    field: str
    problem: str
    tenant_id: str | None = None

    @property
    def message(self) -> str:
        return f"tenant {self.position}: {self.field}: {self.problem}"

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "field": self.field, "problem": self.problem, "tenant_id": self.tenant_id}


@dataclass(frozen=True)
class TenantRegister:
    """The valid tenants, in register order, and the entries refused with why."""

    tenants: tuple[Tenant, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    source: str = ""  # a path or a table name, never a connection string

    def find(self, tenant_id: str) -> Tenant | None:
        wanted = tenant_id.strip().lower()
        return next((tenant for tenant in self.tenants if tenant.tenant_id == wanted), None)

    def refusal(self, tenant_id: str) -> Rejected | None:
        """Why a tenant id of the register was refused, when it was."""
        wanted = tenant_id.strip().lower()
        return next((entry for entry in self.rejected if entry.tenant_id == wanted), None)


def parse_tenants(document: Any, source: str = "") -> TenantRegister:
    """Validate the parsed JSON; TenantsFileError when it is not a list of objects."""
    if not isinstance(document, list):
        raise TenantsFileError("must be a JSON list of tenant objects")
    if len(document) > MAX_TENANTS:
        raise TenantsFileError(f"holds more than {MAX_TENANTS} tenants")
    tenants: list[Tenant] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for position, entry in enumerate(document, start=1):
        if not isinstance(entry, dict):
            raise TenantsFileError(f"entry {position} is not a JSON object")
        tenant_or_problem = parse_entry(entry, position)
        if isinstance(tenant_or_problem, Rejected):
            rejected.append(tenant_or_problem)
        elif tenant_or_problem.tenant_id in seen:
            rejected.append(Rejected(position, "tenant_id", "appears twice in the register (the first one counts)"))
        else:
            seen.add(tenant_or_problem.tenant_id)
            tenants.append(tenant_or_problem)
    return TenantRegister(tuple(tenants), tuple(rejected), source)


def parse_entry(entry: Mapping[str, Any], position: int) -> Tenant | Rejected:
    """One entry: a Tenant, or the first thing wrong with it (field by field, in the documented order)."""
    raw_id = entry.get("tenant_id")
    tenant_id = raw_id.strip().lower() if isinstance(raw_id, str) and _GUID.match(raw_id.strip()) else None

    def reject(name: str, problem: str) -> Rejected:
        return Rejected(position, name, problem, tenant_id)

    unknown = sorted(str(key)[:64] for key in entry if key not in FIELDS)
    if unknown:
        return reject(unknown[0], f"is not a field of a tenant (expected {', '.join(FIELDS)})")
    if tenant_id is None:
        return reject("tenant_id", "required: the tenant's GUID, e.g. 0b5c1c1e-1111-2222-3333-444455556666")
    organization = entry.get("organization")
    if not isinstance(organization, str) or not _DOMAIN.match(organization.strip()):
        return reject("organization", "required: the initial domain, e.g. contoso.onmicrosoft.com")
    cloud = entry.get("cloud")
    if cloud is not None and (not isinstance(cloud, str) or cloud.strip().lower() not in CLOUDS):
        return reject("cloud", f"must be one of {', '.join(CLOUDS)}")
    display_name = entry.get("display_name")
    if display_name is not None and (
        not isinstance(display_name, str)
        or not display_name.strip()
        or len(display_name) > MAX_NAME_LENGTH
        or not display_name.isprintable()
    ):
        return reject("display_name", f"must be printable text of 1 to {MAX_NAME_LENGTH} characters")
    settings = entry.get("settings", {})
    if not isinstance(settings, dict):
        return reject("settings", "must be an object of audit policy settings by variable name")
    overrides: dict[str, str] = {}
    for name, given in settings.items():
        where = f"settings.{str(name)[:64]}"
        if name not in OVERRIDABLE:
            return reject(where, f"is not an audit policy setting a tenant may set ({', '.join(OVERRIDABLE)})")
        value = ("true" if given else "false") if isinstance(given, bool) else given
        if isinstance(value, int | float):
            value = repr(value)
        if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
            return reject(where, f"must be text, a number or true/false (at most {MAX_VALUE_LENGTH} characters)")
        overrides[name] = value
    if (problem := _policy_problem(overrides)) is not None:
        return reject(f"settings.{problem[0]}", problem[1])
    return Tenant(
        tenant_id=tenant_id,
        organization=organization.strip().lower(),
        cloud=cloud.strip().lower() if isinstance(cloud, str) else None,
        display_name=display_name.strip() if isinstance(display_name, str) else None,
        settings=overrides,
    )


def _policy_problem(overrides: Mapping[str, str]) -> tuple[str, str] | None:
    """The first override the policy parser refuses (the same parser as the deployment's own settings)."""
    from shared.config.settings import parse_policy  # settings imports the exception register; keep this one light

    problems: dict[str, str] = {}
    parse_policy(Env(overrides), problems)
    for name in overrides:
        if name in problems:
            return name, problems[name]
    return None


def load_tenants(path: str | Path) -> TenantRegister:
    """Read and validate the register file (TenantsFileError when it is unusable as a whole)."""
    file = Path(path)
    try:
        if not stat.S_ISREG(file.stat().st_mode):  # a FIFO or a device would block or read forever
            raise TenantsFileError("is not a regular file")
        with file.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise TenantsFileError(f"is larger than {MAX_FILE_BYTES} bytes")
        document = json.loads(data.decode("utf-8-sig"))  # -sig: Windows editors often save with a BOM
    except TenantsFileError:
        raise
    except OSError as exc:
        raise TenantsFileError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TenantsFileError("is not valid JSON") from None
    return parse_tenants(document, str(file))


assert all(BY_NAME[name].parsed for name in OVERRIDABLE)
