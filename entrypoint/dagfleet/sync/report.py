"""What a sync did: its outcome (the exit code of ``dagfleet sync``) and its report, derived from
the plan it applied. The status (dagfleet.sync.fleetstatus) and the metrics read it; the sync
(dagfleet.sync.apply) writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from dagfleet.sync.plan import Action, Plan


class Outcome(IntEnum):
    """Exit codes of ``dagfleet sync`` (sysexits.h where one fits)."""

    SYNCED = 0
    NOTHING_USABLE = 69  # EX_UNAVAILABLE
    KEPT_LAST_KNOWN_GOOD = 75  # EX_TEMPFAIL


@dataclass
class SyncReport:
    outcome: Outcome = Outcome.SYNCED
    source: str = "api"
    workflows: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # file names: new DAGs or a changed template
    config_updated: list[str] = field(default_factory=list)  # file names: only the config changed
    unchanged: int = 0
    pruned: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # workflow IDs
    problems: list[str] = field(default_factory=list)
    requests: int = 0
    bytes: int = 0
    # Per workflow, for `dagfleet status` and the metrics (dagfleet.sync.fleetstatus): the one-line
    # problem of each workflow that has one (rejected IDs included, by their escaped raw ID), the
    # IDs whose DAG stayed as it was although rejected (kept its last known good config, or a
    # duplicated ID), and the IDs that could not be fetched or written (kept its DAG, or none yet).
    workflow_problems: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    hidden_rejected: int = 0  # rejected IDs past MAX_REJECTED_IDS_LISTED (no row; counted in the status and metrics)
    elided: list[str] = field(default_factory=list)  # log-only lines of ``problems`` ("… and N more")
    rejected_ids: int = 0  # entries of the list rejected for their ID (invalid, or duplicated), every one

    @classmethod
    def from_plan(cls, plan: Plan, source: str, workflows: list[str], rows: dict[str, str] | None = None) -> SyncReport:
        """``rows``: the per-workflow problems found before planning (IDs, duplicates, foreign files)."""

        def names(action: Action) -> list[str]:
            return [s.file_name for s in plan.steps if s.action is action]

        rejected = [s for s in plan.steps if s.action is Action.REJECT]
        return cls(
            source=source,
            workflows=workflows,
            written=names(Action.WRITE),
            config_updated=names(Action.UPDATE_CONFIG),
            unchanged=len(names(Action.KEEP)),
            pruned=sorted(plan.prune),
            rejected=plan.ids(Action.REJECT),
            problems=[*plan.problems, *(s.problem for s in plan.steps if s.problem)],
            workflow_problems={**(rows or {}), **{s.workflow_id: s.problem for s in plan.steps if s.problem}},
            kept=sorted(
                {s.workflow_id for s in rejected if not s.unavailable and s.dag is None and s.has_file}
                | (plan.keep - {s.workflow_id for s in plan.steps})
            ),
            unavailable=[s.workflow_id for s in rejected if s.unavailable],
        )

    @property
    def changed(self) -> bool:
        return bool(self.written or self.config_updated or self.pruned)

    def summary(self) -> str:
        if self.outcome is Outcome.KEPT_LAST_KNOWN_GOOD:
            return f"kept the last known good set of {len(self.workflows)} workflow(s) untouched"
        if self.outcome is Outcome.NOTHING_USABLE:
            return "nothing usable: no DAGs were generated"
        return (
            f"synced {len(self.workflows)} workflow(s) from {self.source}: {len(self.written)} written, "
            f"{len(self.config_updated)} config updated, {self.unchanged} unchanged, {len(self.pruned)} pruned, "
            f"{len(self.rejected) + self.rejected_ids} rejected, {len(self.problems)} problem(s)"
        )
