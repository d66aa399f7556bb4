"""What every streamed read keeps besides its findings: rows it could not read, and whether it is complete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.model import ControlResult, Status

MAX_EXAMPLES = 20


@dataclass(kw_only=True)
class StreamedScan:
    """Base of the pure accumulators fed page by page (subclasses add `policy` and their findings)."""

    unreadable: int = 0
    unreadable_examples: list[str] = field(default_factory=list)
    incomplete: str | None = None  # why the read cannot be trusted as complete, if it cannot
    warnings: list[str] = field(default_factory=list)

    def reset(self) -> None:
        """Forget everything (the query restarted from page 1)."""
        self.__dict__.update(type(self)(self.policy).__dict__)  # type: ignore[attr-defined,call-arg]  # subclasses take the policy

    def note_unreadable(self, who: str) -> None:
        self.unreadable += 1
        if len(self.unreadable_examples) < MAX_EXAMPLES:
            self.unreadable_examples.append(who)

    def failure(self, control_id: str, expected: str, noun: str, details: dict[str, Any]) -> ControlResult | None:
        """Fail closed: a read that was cut short, or had rows that could not be read, proves nothing."""
        if self.incomplete:
            return ControlResult(
                control_id,
                Status.ERROR,
                expected,
                "incomplete read",
                f"The {noun} could not be read completely: {self.incomplete}",
                details,
            )
        if self.unreadable:
            return ControlResult(
                control_id,
                Status.ERROR,
                expected,
                f"{self.unreadable} {noun} unreadable",
                f"{self.unreadable} {noun} had missing or malformed properties (e.g. "
                f"{', '.join(self.unreadable_examples[:5])}); compliance is unknown.",
                details,
            )
        return None
