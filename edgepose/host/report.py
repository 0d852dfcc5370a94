"""What every ``edgepose doctor`` check returns (``Check``) and the report they make."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Check:
    """One line of the report. ``blocking`` fails stop the configured run from starting."""

    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    hint: str = ""
    blocking: bool = False


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def can_start(self) -> bool:
        return not self.reasons

    @property
    def reasons(self) -> list[str]:
        """Why the configured run could not start (empty when it can)."""
        return [f"{c.name}: {c.detail}" for c in self.checks if c.blocking and c.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"can_start": self.can_start, "reasons": self.reasons,
                "checks": [asdict(c) for c in self.checks]}

    def format(self) -> str:
        lines = [f"{c.status:<4}  {c.name:<10}  {c.detail}" + (f"\n{'':16}hint: {c.hint}" if c.hint else "")
                 for c in self.checks]
        if self.can_start:
            lines.append("result: the configured run can start")
        else:
            lines.append("result: the configured run cannot start: " + "; ".join(self.reasons))
        return "\n".join(lines)
