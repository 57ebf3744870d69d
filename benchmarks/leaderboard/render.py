"""Render a board as Markdown, CSV and one static HTML page (sortable, no network).

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
import statistics
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from benchmarks.leaderboard.board import load_board
from benchmarks.leaderboard.schema import BoardEntry, BoardIndex
from benchmarks.leaderboard.view import RULES
from benchmarks.registry import TASKS
from benchmarks.results import ScoreStat
from modelzoo.errors import UnknownNameError
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir


@dataclass
class Row:
    """One ranked entry."""

    rank: int
    entry: BoardEntry
    average: float
    tasks: dict[str, ScoreStat] = field(default_factory=dict)


@dataclass
class Table:
    """A ranked board: title, task columns (with their main metric) and rows."""

    title: str
    tasks: list[tuple[str, str]]
    rows: list[Row]
    rules: list[str] = field(default_factory=list)
    heldout: bool = False


def board_table(index: BoardIndex, entries: list[BoardEntry]) -> Table:
    """Rank entries by the unweighted mean of their tasks' main scores (ties: earlier first)."""
    tasks: dict[str, str] = {}
    for e in entries:
        for s in e.scores:
            tasks.setdefault(s.task, s.main_score)
    rows = []
    for e in entries:
        cells = {s.task: s.main for s in e.scores}
        avg = statistics.fmean(c.mean for c in cells.values()) if cells else float("nan")
        rows.append(Row(rank=0, entry=e, average=avg, tasks=cells))
    rows.sort(key=lambda r: (-r.average, r.entry.added, r.entry.id))
    for i, r in enumerate(rows, 1):
        r.rank = i
    zoo = f"{index.zoo.name} v{index.zoo.version}" if index.zoo else "no zoo yet"
    if index.heldout is not None:
        rules = list(RULES)
    else:
        rules = [OPEN_BOARD_NOTE]
    return Table(title=f"Leaderboard: {index.suite or 'empty'} on {zoo}",
                 tasks=list(tasks.items()), rows=rows, rules=rules,
                 heldout=index.heldout is not None)


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
    head = ["#", "Method", "Version", "Authors", "Average",
            *[f"{t} ({m})" for t, m in table.tasks], "Added", "Verified"]
    lines = [f"# {md_escape(table.title)}", "",
             "Scores are recomputed by the board from the submitted predictions; Average is "
             "the unweighted mean of the tasks' main scores. Verified: the maintainer "
             "re-ran the installed method on the label-free view and got the same scores.",
             "", *[f"- {md_escape(r)}" for r in table.rules], "",
             "| " + " | ".join(md_escape(h) for h in head) + " |",
             "|" + "|".join("---:" if i in (0, 4) or 4 < i < len(head) - 2 else "---"
                            for i in range(len(head))) + "|"]
    for r in table.rows:
        m = r.entry.method
        name = md_escape(m.display_name)
        if m.url:
            name = f"[{name}]({m.url.replace('(', '%28').replace(')', '%29')})"
        cells = [str(r.rank), name, md_escape(f"{m.name} {m.version}"),
                 md_escape(", ".join(m.authors)), f"{r.average:.4f}",
                 *[str(r.tasks[t]) if t in r.tasks else "–" for t, _ in table.tasks],
                 r.entry.added.date().isoformat(), _verified_text(r.entry)]
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
    """One row per entry: metadata, average, and mean / std of each task's main score."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "entry_id", "method", "method_version", "display_name", "authors",
                "url", "average", *[f"{t}/{m}/{s}" for t, m in table.tasks
                                    for s in ("mean", "std")], "added", "verified"])
    for r in table.rows:
        m = r.entry.method
        scores = []
        for t, _ in table.tasks:
            c = r.tasks.get(t)
            scores += [f"{c.mean:.6f}", f"{c.std:.6f}"] if c else ["", ""]
        w.writerow([r.rank, r.entry.id, m.name, csv_safe(m.version), csv_safe(m.display_name),
                    csv_safe("; ".join(m.authors)), csv_safe(m.url or ""), f"{r.average:.6f}",
                    *scores, r.entry.added.isoformat(),
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
    heads = [{"key": key, "label": label, "kind": kind, "metric": None, "tip": "",
              "sort": "descending" if key == "average" else "none"}
             for key, label, kind in (("rank", "#", "num"), ("method", "Method", "text"),
                                      ("version", "Version", "text"),
                                      ("authors", "Authors", "text"),
                                      ("average", "Average", "num"))]
    heads += [{"key": f"task:{t}", "label": t, "kind": "num", "metric": m,
               "tip": _describe(t), "sort": "none"} for t, m in table.tasks]
    heads += [{"key": key, "label": label, "kind": "text", "metric": None, "tip": "",
               "sort": "none"} for key, label in (("added", "Added"), ("verified", "Verified"))]
    rows = []
    for r in table.rows:
        m = r.entry.method
        cells = [{"value": repr(c.mean), "text": str(c)} if (c := r.tasks.get(t)) else None
                 for t, _ in table.tasks]
        rows.append({
            "id": r.entry.id, "rank": r.rank, "display_name": m.display_name,
            "sort_name": m.display_name.casefold(), "url": m.url, "name": m.name,
            "description": m.description, "version": m.version,
            "authors": ", ".join(m.authors), "sort_authors": ", ".join(m.authors).casefold(),
            "average_value": repr(r.average), "average": f"{r.average:.4f}", "cells": cells,
            "added": r.entry.added.isoformat(), "added_date": r.entry.added.date().isoformat(),
            "verified": int(r.entry.verified), "verified_text": _verified_text(r.entry)})
    return _ENV.get_template("leaderboard.html.j2").render(
        csp=Markup(csp), title=table.title, style=Markup(STYLE), script=Markup(SORT_JS),
        rules=table.rules, heads=heads, rows=rows)


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
