"""The front door and the reports: no number in docs/ is typed by hand, links resolve, the CI
runs the README's test command, and the README's quick-start table is the generated one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.provenance import MARK, QUOTED, missing_facts, parse_header

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: The Markdown files whose relative links must resolve.
LINKED = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
#: A commit named in a quoted doc's source line (7-40 hex digits in backticks).
COMMIT = re.compile(r"`[0-9a-f]{7,40}`")


def _doc_files() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*") if p.is_file())


def test_docs_exist_and_are_markdown() -> None:
    files = _doc_files()
    assert files, "docs/ holds the measured reports"
    assert all(p.suffix == ".md" for p in files), [p.name for p in files]


@pytest.mark.parametrize("path", _doc_files(), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_doc_is_generated_or_names_the_source_of_each_section(path: Path) -> None:
    """A generated report carries its header (command, commit, machine); a quoted doc (prose
    about earlier runs) names, in every section, the command, commit and machine of what it
    quotes."""
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text else ""
    if first == MARK:
        facts = parse_header(text)
        assert not missing_facts(facts), f"{path}: header lacks {missing_facts(facts)}"
        return
    assert first == QUOTED, (f"{path} must start with the generated header (write it with the "
                             "command that measures it) or be a quoted doc")
    sections = re.split(r"\n(?=## )", text)[1:]
    assert sections, f"{path}: a quoted doc has ## sections, each with its source"
    for sec in sections:
        name = sec.splitlines()[0]
        src = [ln for ln in sec.splitlines() if ln.startswith("Source:")]
        assert src, f"{path} {name}: no 'Source:' line"
        line = src[0]
        assert "`" in line and COMMIT.search(line) and "machine" in line, (
            f"{path} {name}: the source line names a command (in backticks), a commit and a "
            f"machine: {line}")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


@pytest.mark.parametrize("path", LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{path.relative_to(ROOT)}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{path.relative_to(ROOT)}: no #{anchor} in {file}"


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[str]:
    """Shell commands of a block: lines joined at trailing backslashes, split at ``&&``,
    comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    cmds = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        cmds += [c.strip() for c in line.split("&&") if c.strip()]
    return cmds


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """``.ci/run`` ends with the README's second block (install + tests), command for
    command, so the documented command is the tested one."""
    blocks = _code_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 2, "README: first block the main job, second the tests"
    readme = _commands(blocks[1])
    assert any(c.startswith("python -m pytest") for c in readme), readme
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.lstrip().startswith("#")]
    assert ci[-len(readme):] == readme, (ci, readme)


def _table(text: str) -> list[str]:
    """The first Markdown table's rows (header included)."""
    rows, started = [], False
    for line in text.splitlines():
        if line.startswith("| method"):
            started = True
        if started:
            if not line.startswith("|"):
                break
            rows.append(line)
    return rows


def test_readme_quick_start_table_is_the_generated_one() -> None:
    """The README's quick-start table is copied from the generated report it links, cell
    for cell (rerun the command in that report and copy its table to change it)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- table: (docs/[\w./-]+\.md) -->", readme)
    assert m, "README: mark the quick-start table with <!-- table: docs/<report>.md -->"
    report = (ROOT / m.group(1)).read_text(encoding="utf-8")
    assert report.startswith(MARK)
    mine = _table(readme[m.end():])
    assert mine and mine == _table(report)
