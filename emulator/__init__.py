"""Local stand-in for Exchange Online's admin API, Entra ID, managed identity and App Insights ingestion.

See docs/emulator-spec.md. Test and demo code only: nothing in `shared/` may import this package.
"""

from .emulator import Emulator
from .errors import EmulatedError
from .faults import Fault, FiredFault
from .scenario import load_scenario
from .tenant import TenantState
from .wire import RecordedRequest

__all__ = ["EmulatedError", "Emulator", "Fault", "FiredFault", "RecordedRequest", "TenantState", "load_scenario"]
