"""Render a board as Markdown, CSV and one static HTML page (sortable, no network).

Open boards rank by the unweighted mean of the tasks' main scores. Held-out boards show the
feedback half's scores of every entry at once and rank only the entries whose ranking score
a release published (through the Ladder: :mod:`benchmarks.leaderboard.ranking`); the others
are listed unranked ("pending release", or "not above the best" at their release). No
unpublished ranking score appears anywhere.

Every text that comes from a submission is escaped for its output: HTML entities in the page
(a jinja2 template with autoescaping, ``templates/leaderboard.html.j2``, and a
Content-Security-Policy that only allows the page's own script and style, by hash), Markdown
and HTML metacharacters in the Markdown table, and spreadsheet formulas (``=``, ``+``, ``-``,
``@`` at the start of a text cell) in the CSV.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import math
import statistics
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from benchmarks.leaderboard.board import load_board
from benchmarks.leaderboard.rules import rules_text
from benchmarks.leaderboard.schema import BoardEntry, BoardIndex
from benchmarks.registry import TASKS
from benchmarks.results import ScoreStat
from modelzoo.errors import UnknownNameError
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir


@dataclass
class Row:
    """One entry of the table.

    Attributes:
        rank: its place (None: not ranked yet, held-out boards).
        average: mean of the shown tasks' main scores (held-out boards: feedback half).
        tasks: the shown main score per task.
        ranking: held-out boards: the ranking score a release published, else None.
        release: held-out boards: the release that considered it, else None (pending).
        status: held-out boards: the ranking cell's text.
    """

    rank: int | None
    entry: BoardEntry
    average: float
    tasks: dict[str, ScoreStat] = field(default_factory=dict)
    ranking: float | None = None
    release: int | None = None
    status: str = ""


@dataclass
class Table:
    """A ranked board: title, task columns (with their main metric) and rows."""

    title: str
    tasks: list[tuple[str, str]]
    rows: list[Row]
    rules: list[str] = field(default_factory=list)
    heldout: bool = False
    margin: float = 0.01

    def ranking_text(self, value: float) -> str:
        """A published ranking score, to the margin's decimals."""
        digits = max(0, -math.floor(math.log10(self.margin) + 1e-9))
        return f"{value:.{digits}f}"


def board_table(index: BoardIndex, entries: list[BoardEntry]) -> Table:
    """Rank entries: open boards by the unweighted mean of their tasks' main scores (ties:
    earlier first); held-out boards by published ranking score, then the unranked ones in
    the order added."""
    tasks: dict[str, str] = {}
    for e in entries:
        for s in e.shown:
            tasks.setdefault(s.task, s.main_score)
    zoo = f"{index.zoo.name} v{index.zoo.version}" if index.zoo else "no zoo yet"
    title = f"Leaderboard: {index.suite or 'empty'} on {zoo}"
    rows = []
    for e in entries:
        cells = {s.task: s.main for s in e.shown}
        avg = statistics.fmean(c.mean for c in cells.values()) if cells else float("nan")
        rows.append(Row(rank=None, entry=e, average=avg, tasks=cells))
    if index.heldout is None:
        rows.sort(key=lambda r: (-r.average, r.entry.added, r.entry.id))
        for i, r in enumerate(rows, 1):
            r.rank = i
        return Table(title=title, tasks=list(tasks.items()), rows=rows,
                     rules=[OPEN_BOARD_NOTE])
    table = Table(title=title, tasks=list(tasks.items()), rows=rows,
                  rules=rules_text(index.heldout.rules), heldout=True,
                  margin=index.heldout.rules.ladder_margin)
    released = index.released()
    for r in rows:
        number, step = released.get(r.entry.id, (None, None))
        r.release = number
        if step is None:
            r.status = "pending release"
        elif step.published is None:
            best = f" ({table.ranking_text(step.best)})" if step.best is not None else ""
            r.status = f"not above the best{best}"
        else:
            r.ranking = step.published
            r.status = table.ranking_text(step.published)
    ranked = sorted((r for r in rows if r.ranking is not None),
                    key=lambda r: (-(r.ranking or 0.0), r.release or 0, r.entry.added))
    for i, r in enumerate(ranked, 1):
        r.rank = i
    table.rows = ranked + [r for r in rows if r.ranking is None]
    return table


#: Stated on boards without a held-out zoo (made by ``add --zoo`` instead of ``init``).
OPEN_BOARD_NOTE = (
    "Open board: it scores a zoo whose labels may be public, so a rank here is no evidence "
    "of prediction from weights (copying the labels scores perfectly). Rank methods on a "
    "held-out board (`bench leaderboard init`)."
)


def _describe(task: str) -> str:
    try:
        return TASKS.get(task).description
    except UnknownNameError:
        return ""


# --------------------------------------------------------------------------- Markdown, CSV

_MD = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "[": "\\[",
                     "]": "\\]", "`": "\\`", "*": "\\*", "_": "\\_", "\\": "\\\\",
                     "\n": " ", "\r": " "})


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell (no HTML, links, emphasis or cell breaks)."""
    return text.translate(_MD)


def to_markdown(table: Table) -> str:
    """A Markdown heading and table (main score mean ± std per task)."""
    if table.heldout:
        intro = ("Scores are recomputed by the board from the submitted predictions. Rank: "
                 "the ranking score a release published (the mean of the tasks' main scores "
                 "on the secret ranking half of the rows, through the Ladder). The task "
                 "columns and Feedback are scores on the feedback half, returned to each "
                 "submitter at once; they do not decide the rank. Verified: the maintainer "
                 "re-ran the installed method on the label-free view and got the same scores.")
        head = ["#", "Method", "Version", "Authors", "Ranking", "Feedback",
                *[f"{t} ({m}, feedback)" for t, m in table.tasks], "Added", "Release",
                "Verified"]
        numeric = {0, 4, 5, *range(6, 6 + len(table.tasks))}
    else:
        intro = ("Scores are recomputed by the board from the submitted predictions; Average "
                 "is the unweighted mean of the tasks' main scores. Verified: the maintainer "
                 "re-ran the installed method on the label-free view and got the same scores.")
        head = ["#", "Method", "Version", "Authors", "Average",
                *[f"{t} ({m})" for t, m in table.tasks], "Added", "Verified"]
        numeric = {0, 4, *range(5, 5 + len(table.tasks))}
    lines = [f"# {md_escape(table.title)}", "", intro,
             "", *[f"- {md_escape(r)}" for r in table.rules], "",
             "| " + " | ".join(md_escape(h) for h in head) + " |",
             "|" + "|".join("---:" if i in numeric else "---" for i in range(len(head))) + "|"]
    for r in table.rows:
        m = r.entry.method
        name = md_escape(m.display_name)
        if m.url:
            name = f"[{name}]({m.url.replace('(', '%28').replace(')', '%29')})"
        cells = [str(r.rank) if r.rank is not None else "–", name,
                 md_escape(f"{m.name} {m.version}"), md_escape(", ".join(m.authors))]
        if table.heldout:
            cells.append(md_escape(r.status))
        cells += [f"{r.average:.4f}",
                  *[str(r.tasks[t]) if t in r.tasks else "–" for t, _ in table.tasks],
                  r.entry.added.date().isoformat()]
        if table.heldout:
            cells.append(str(r.release) if r.release is not None else "pending")
        cells.append(_verified_text(r.entry))
        lines.append("| " + " | ".join(cells) + " |")
    if not table.rows:
        lines.append("")
        lines.append("No entries yet.")
    return "\n".join(lines) + "\n"


def _verified_text(entry: BoardEntry) -> str:
    v = entry.verification
    return f"yes ({v.verified.date().isoformat()})" if v is not None else "no"


def csv_safe(text: str) -> str:
    """Neutralise spreadsheet formulas in a text cell (prefix ``'``)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(table: Table) -> str:
    """One row per entry: metadata, average (held-out boards: the published ranking score
    and the feedback average), and mean / std of each task's shown main score."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    scored = ["ranking_score", "feedback_average"] if table.heldout else ["average"]
    w.writerow(["rank", "entry_id", "method", "method_version", "display_name", "authors",
                "url", *scored, *[f"{t}/{m}/{s}" for t, m in table.tasks
                                  for s in ("mean", "std")], "added",
                *(["release"] if table.heldout else []), "verified"])
    for r in table.rows:
        m = r.entry.method
        scores = []
        for t, _ in table.tasks:
            c = r.tasks.get(t)
            scores += [f"{c.mean:.6f}", f"{c.std:.6f}"] if c else ["", ""]
        head = ([table.ranking_text(r.ranking) if r.ranking is not None else ""]
                if table.heldout else [])
        w.writerow([r.rank if r.rank is not None else "", r.entry.id, m.name,
                    csv_safe(m.version), csv_safe(m.display_name),
                    csv_safe("; ".join(m.authors)), csv_safe(m.url or ""), *head,
                    f"{r.average:.6f}", *scores, r.entry.added.isoformat(),
                    *([r.release if r.release is not None else ""] if table.heldout else []),
                    "true" if r.entry.verified else "false"])
    return buf.getvalue()


# --------------------------------------------------------------------------- HTML

_TEMPLATES = "templates"
#: The page's sort script and style sheet (package files; the CSP allows exactly these).
SORT_JS = resources.files(__package__).joinpath(_TEMPLATES, "sort.js").read_text("utf-8")
STYLE = resources.files(__package__).joinpath(_TEMPLATES, "style.css").read_text("utf-8")
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader(__package__, _TEMPLATES), autoescape=True,
    trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def to_html(table: Table) -> str:
    """A self-contained page (``templates/leaderboard.html.j2``, autoescaped): the table, a
    sort script, a CSP that allows nothing else."""
    csp = (f"default-src 'none'; script-src {_csp_hash(SORT_JS)}; "
           f"style-src {_csp_hash(STYLE)}; img-src 'none'; base-uri 'none'; form-action 'none'")
    first = (("ranking", "Ranking", "num"), ("average", "Feedback", "num")) if table.heldout \
        else (("average", "Average", "num"),)
    sorted_by = "ranking" if table.heldout else "average"
    heads = [{"key": key, "label": label, "kind": kind, "metric": None, "tip": "",
              "sort": "descending" if key == sorted_by else "none"}
             for key, label, kind in (("rank", "#", "num"), ("method", "Method", "text"),
                                      ("version", "Version", "text"),
                                      ("authors", "Authors", "text"), *first)]
    heads += [{"key": f"task:{t}", "label": t, "kind": "num",
               "metric": f"{m}, feedback" if table.heldout else m,
               "tip": _describe(t), "sort": "none"} for t, m in table.tasks]
    last = (("added", "Added"), ("release", "Release"), ("verified", "Verified")) \
        if table.heldout else (("added", "Added"), ("verified", "Verified"))
    heads += [{"key": key, "label": label, "kind": "text", "metric": None, "tip": "",
               "sort": "none"} for key, label in last]
    rows = []
    for r in table.rows:
        m = r.entry.method
        cells = [{"value": repr(c.mean), "text": str(c)} if (c := r.tasks.get(t)) else None
                 for t, _ in table.tasks]
        rows.append({
            "id": r.entry.id, "rank": r.rank if r.rank is not None else "–",
            "rank_value": r.rank if r.rank is not None else "",
            "ranking_value": repr(r.ranking) if r.ranking is not None else "",
            "ranking": r.status,
            "release": r.release if r.release is not None else "pending",
            "release_value": r.release if r.release is not None else "",
            "display_name": m.display_name,
            "sort_name": m.display_name.casefold(), "url": m.url, "name": m.name,
            "description": m.description, "version": m.version,
            "authors": ", ".join(m.authors), "sort_authors": ", ".join(m.authors).casefold(),
            "average_value": repr(r.average), "average": f"{r.average:.4f}", "cells": cells,
            "added": r.entry.added.isoformat(), "added_date": r.entry.added.date().isoformat(),
            "verified": int(r.entry.verified), "verified_text": _verified_text(r.entry)})
    return _ENV.get_template("leaderboard.html.j2").render(
        csp=Markup(csp), title=table.title, style=Markup(STYLE), script=Markup(SORT_JS),
        rules=table.rules, heads=heads, rows=rows, heldout=table.heldout)


def render_board(*, board: str | Path, out: str | Path) -> list[Path]:
    """Write ``index.html``, ``leaderboard.md`` and ``leaderboard.csv`` of a board to ``out``.

    Raises:
        LeaderboardError: the board cannot be read.
        StorageError: ``out`` cannot be written.
    """
    table = board_table(*load_board(board))
    root = ensure_dir(Path(out))
    paths = []
    for name, text in (("index.html", to_html(table)), ("leaderboard.md", to_markdown(table)),
                       ("leaderboard.csv", to_csv(table))):
        atomic_write_bytes(root / name, text.encode())
        paths.append(root / name)
    return paths
