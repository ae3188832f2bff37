"""The fault suite's ledger: which faults each test injected, and how many survived (its test passed)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class FaultLedger:
    """Faults per test node; ``summary()`` is the line that ends the pytest output."""

    tried: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # nodeid -> [(kind, name)]
    failed: set[str] = field(default_factory=set)

    def add(self, nodeid: str, name: str, kind: str = "fault", count: int = 1) -> None:
        self.tried.setdefault(nodeid, []).extend([(kind, name)] * count)

    def totals(self) -> tuple[int, int, Counter[str]]:
        tried = sum(len(v) for v in self.tried.values())
        survived = sum(len(v) for k, v in self.tried.items() if k not in self.failed)
        kinds: Counter[str] = Counter(kind for v in self.tried.values() for kind, _ in v)
        return tried, survived, kinds

    def summary(self) -> str:
        tried, survived, kinds = self.totals()
        extra = ", ".join(f"{n} {kind}s" for kind, n in sorted(kinds.items()) if kind != "fault")
        return f"fault suite: {tried} faults tried, {survived} survived" + (f" ({extra})" if extra else "")
