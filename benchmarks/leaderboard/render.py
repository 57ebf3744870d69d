"""Render a board as Markdown, CSV and one static HTML page (sortable, no network).

Every text that comes from a submission is escaped for its output: HTML entities in the page
(and a Content-Security-Policy that only allows the page's own script, by hash), Markdown
and HTML metacharacters in the Markdown table, and spreadsheet formulas (``=``, ``+``, ``-``,
``@`` at the start of a text cell) in the CSV.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

SORT_JS = """\
"use strict";
(function () {
  var table = document.getElementById("leaderboard");
  if (!table || !table.tHead) { return; }
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function key(row, col, numeric) {
    var v = row.cells[col].getAttribute("data-value") || "";
    if (!numeric) { return v; }
    var x = parseFloat(v);
    return isNaN(x) ? -Infinity : x;
  }
  function sortBy(col) {
    var th = heads[col];
    var numeric = th.getAttribute("data-type") === "num";
    var state = th.getAttribute("aria-sort");
    var desc = state === "none" ? numeric : state === "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col, numeric), y = key(b, col, numeric);
      var c = numeric ? (x < y ? -1 : (x > y ? 1 : 0)) : x.localeCompare(y);
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) {
      heads[i].setAttribute("aria-sort", i === col ? (desc ? "descending" : "ascending") : "none");
    }
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () { sortBy(col); });
  });
})();
"""

STYLE = """\
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35rem 0.6rem; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th button { all: inherit; cursor: pointer; padding: 0; border: 0; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
small { color: #666; }
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def to_html(table: Table) -> str:
    """A self-contained page: the table, a sort script, a CSP that allows nothing else."""
    csp = (f"default-src 'none'; script-src {_csp_hash(SORT_JS)}; "
           f"style-src {_csp_hash(STYLE)}; img-src 'none'; base-uri 'none'; form-action 'none'")
    heads = [("rank", "#", "num"), ("method", "Method", "text"), ("version", "Version", "text"),
             ("authors", "Authors", "text"), ("average", "Average", "num"),
             *[(f"task:{t}", f"{t}", "num") for t, _ in table.tasks],
             ("added", "Added", "text"), ("verified", "Verified", "text")]
    metric = dict(table.tasks)
    th = []
    for key, label, kind in heads:
        task = key.removeprefix("task:") if key.startswith("task:") else None
        sub = f"<br><small>{_e(metric[task])}</small>" if task else ""
        tip = f' title="{_e(_describe(task))}"' if task else ""
        sort = "descending" if key == "average" else "none"
        th.append(f'<th scope="col" data-key="{_e(key)}" data-type="{kind}" class="{kind}"'
                  f'{tip} aria-sort="{sort}"><button type="button">{_e(label)}</button>{sub}</th>')
    body = []
    for r in table.rows:
        m = r.entry.method
        name = _e(m.display_name)
        if m.url:
            name = f'<a href="{_e(m.url)}" rel="nofollow noopener noreferrer">{name}</a>'
        desc = f"<br><small>{_e(m.description)}</small>" if m.description else ""
        cells = [
            f'<td class="num" data-value="{r.rank}">{r.rank}</td>',
            f'<td class="method" data-value="{_e(m.display_name.casefold())}">{name}'
            f"<br><small>{_e(m.name)}</small>{desc}</td>",
            f'<td data-value="{_e(m.version)}">{_e(m.version)}</td>',
            f'<td data-value="{_e(", ".join(m.authors).casefold())}">'
            f'{_e(", ".join(m.authors))}</td>',
            f'<td class="num" data-value="{r.average!r}">{r.average:.4f}</td>',
        ]
        for t, _ in table.tasks:
            c = r.tasks.get(t)
            cells.append(f'<td class="num" data-value="{c.mean!r}">{_e(c)}</td>' if c else
                         '<td class="num" data-value="">–</td>')
        added = r.entry.added.isoformat()
        cells.append(f'<td data-value="{_e(added)}">{_e(r.entry.added.date().isoformat())}</td>')
        cells.append(f'<td class="verified" data-value="{int(r.entry.verified)}">'
                     f"{_e(_verified_text(r.entry))}</td>")
        body.append(f'<tr data-entry="{_e(r.entry.id)}">' + "".join(cells) + "</tr>")
    empty = "" if table.rows else "<p>No entries yet.</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(table.title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_e(table.title)}</h1>
<p>Scores are recomputed by the board from the submitted predictions (never the claimed
numbers). Average is the unweighted mean of the tasks' main scores. Click a column header
to sort. Verified: the maintainer re-ran the installed method on the label-free view and got
the same scores.</p>
<h2>Rules</h2>
<ul id="rules">
{"".join(f"<li>{_e(r)}</li>" for r in table.rules)}
</ul>
<table id="leaderboard">
<thead><tr>{"".join(th)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
{empty}
<script>{SORT_JS}</script>
</body>
</html>
"""


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
