"""The targets a reproduction is held to, each beside its measured figure (``report.md``).

A :class:`Target` names one cell of the results (task, metric, method) and a goal: a fixed
value (``decoded test models keep >= 0.90 of their accuracy``) or another method's score on
the same task plus a margin (``SANE's linear probe within 0.02 R2 of s(W)``). The table shows
the measured mean ± std over seeds with its 95% bootstrap interval over test models (or
samples), the goal, and a verdict: ``met`` when the whole interval clears the goal, ``met
(point)`` when only the mean does, ``missed`` otherwise. A :class:`Target` without a goal is
reported only (e.g. the samples' novelty beside their accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.results import ScoreStat, TaskResult

__all__ = ["Target", "format_stat", "targets_table"]


@dataclass(frozen=True)
class Target:
    """One measured figure and what it should reach.

    Attributes:
        what: the claim in words.
        task: task name.
        metric: metric of the task's scoring split.
        method: the method measured.
        goal: the fixed value to reach (with ``versus``: the margin added to that score).
        versus: another method whose score on the same task and metric is the goal
            (plus ``goal``); ``None``: ``goal`` is absolute.
        strict: the goal must be exceeded, not only reached.
        report_only: no goal, the figure is shown for context.
    """

    what: str
    task: str
    metric: str
    method: str
    goal: float = 0.0
    versus: str | None = None
    strict: bool = False
    report_only: bool = False


def _stat(results: Sequence[TaskResult], task: str, method: str, metric: str
          ) -> ScoreStat | None:
    for r in results:
        if r.task.name == task and r.method.name == method:
            split = r.main_score.split if r.main_score.split in r.scores else \
                next(iter(r.scores))
            return r.scores[split].get(metric)
    return None


def format_stat(s: ScoreStat) -> str:
    """``mean ± std [low, high]`` (std with several seeds, the interval where defined)."""
    text = f"{s.mean:.3f}"
    if len(s.values) > 1:
        text += f" ± {s.std:.3f}"
    if s.ci is not None and s.ci.low is not None and s.ci.high is not None:
        text += f" [{s.ci.low:.3f}, {s.ci.high:.3f}]"
    return text


def _verdict(s: ScoreStat, goal: float, strict: bool) -> str:
    def clears(x: float) -> bool:
        return x > goal if strict else x >= goal

    if not clears(s.mean):
        return "missed"
    low = s.ci.low if s.ci is not None else None
    return "met" if low is not None and clears(low) else "met (point)"


def targets_table(results: Sequence[TaskResult], targets: Sequence[Target]) -> str:
    """Markdown section: each target's measured figure, its goal and the verdict."""
    if not targets:
        return ""
    lines = ["## Targets", "",
             "Measured: mean ± std over seeds [95% bootstrap interval]. `met`: the interval "
             "clears the goal; `met (point)`: only the mean does.", "",
             "| target | task | metric | method | measured | goal | verdict |",
             "|---|---|---|---|---:|---:|---|"]
    for t in targets:
        s = _stat(results, t.task, t.method, t.metric)
        measured = format_stat(s) if s is not None else "not run"
        if t.report_only:
            goal_text, verdict = "–", "reported"
        elif t.versus is None:
            goal_text = f"{'>' if t.strict else '>='} {t.goal:.3f}"
            verdict = _verdict(s, t.goal, t.strict) if s is not None else "not run"
        else:
            ref = _stat(results, t.task, t.versus, t.metric)
            margin = f" {t.goal:+.3f}" if t.goal else ""
            if ref is None:
                goal_text, verdict = f"{t.versus}{margin} (not run)", "not run"
            else:
                goal = ref.mean + t.goal
                goal_text = (f"{'>' if t.strict else '>='} {goal:.3f} ({t.versus} "
                             f"{ref.mean:.3f}{margin})")
                verdict = _verdict(s, goal, t.strict) if s is not None else "not run"
        lines.append(f"| {t.what} | {t.task} | {t.metric} | {t.method} | {measured} | "
                     f"{goal_text} | {verdict} |")
    return "\n".join(lines) + "\n"
