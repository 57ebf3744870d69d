"""``bench submit`` and ``bench leaderboard init|view|add|release|verify|render|publish``
(registered in benchmarks.cli).

A thin click layer over :mod:`benchmarks.leaderboard`; runnable on its own as
``python -m benchmarks.leaderboard.cli``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from benchmarks.leaderboard.errors import SubmissionRejected
from benchmarks.leaderboard.schema import MAX_SUBMISSION_BYTES, BoardEntry
from benchmarks.leaderboard.score import DEFAULT_TOLERANCE
from modelzoo.clickutil import ZooGroup
from modelzoo.errors import ZooError

_ZOO = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("submit")
@click.option("--results", required=True, type=_ZOO,
              help="Results root of `bench run --save-predictions --out`.")
@click.option("--zoo", required=True, type=_ZOO,
              help="The zoo the results were computed on, or a held-out board's label-free "
                   "view (results of `bench run --heldout VIEW`).")
@click.option("--suite", required=True, help="Suite submitted (e.g. digits-v1).")
@click.option("--method", help="Method name in RESULTS (needed if it holds several).")
@click.option("--method-version", help="Method version (default: its meta()['version']).")
@click.option("--display-name", help="Name shown on the board (default: the method name).")
@click.option("--author", "authors", multiple=True, help="Author (repeatable).")
@click.option("--url", help="Paper or code URL (http / https).")
@click.option("--description", default="", help="A few sentences about the method.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where non-bundled source datasets live.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Submission file to write (.json).")
def submit_cmd(results: Path, zoo: Path, suite: str, method: str | None,
               method_version: str | None, display_name: str | None, authors: tuple[str, ...],
               url: str | None, description: str, data_dir: Path | None, out: Path) -> None:
    """Package results and per-item predictions into one submission file."""
    from benchmarks.leaderboard.submit import make_submission

    sub = make_submission(results=results, zoo=zoo, suite=suite, method=method,
                          version=method_version, display_name=display_name,
                          authors=authors, url=url, description=description, out=out,
                          data_dir=data_dir)
    click.echo(f"wrote {out}: {sub.method.name} v{sub.method.version}, {len(sub.tasks)} tasks "
               f"of {sub.suite} on {sub.zoo.name} v{sub.zoo.version}")


@click.group("leaderboard", cls=ZooGroup)
def leaderboard_group() -> None:
    """Validate, re-score, record, render and publish leaderboard submissions."""


@leaderboard_group.command("add")
@click.argument("submissions", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--board", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Board folder (created on the first accepted submission).")
@click.option("--zoo", type=_ZOO,
              help="Open boards: the zoo the board scores on (held-out boards use their own).")
@click.option("--max-bytes", default=MAX_SUBMISSION_BYTES, show_default=True,
              type=click.IntRange(min=1), help="Largest submission file accepted.")
@click.option("--tolerance", default=DEFAULT_TOLERANCE, show_default=True,
              type=click.FloatRange(min=0), help="Claimed vs recomputed score tolerance.")
@click.option("--strict", is_flag=True,
              help="Reject submissions whose claimed scores differ (default: record the "
                   "recomputed scores and list the differences).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where non-bundled source datasets live.")
def add_cmd(submissions: tuple[Path, ...], board: Path, zoo: Path | None, max_bytes: int,
            tolerance: float, strict: bool, data_dir: Path | None) -> None:
    """Validate each SUBMISSION, recompute its scores and record it on BOARD.

    Each file is added (or rejected) on its own, in order. A held-out board prints the
    scores on its feedback half only: ranking scores stay private until `bench leaderboard
    release`.
    """
    from benchmarks.leaderboard.board import add_submission, add_submissions

    kw: dict[str, Any] = {"board": board, "zoo": zoo, "max_bytes": max_bytes,
                          "tolerance": tolerance, "strict": strict, "data_dir": data_dir,
                          "progress": click.echo}
    if len(submissions) == 1:
        try:
            results: list[BoardEntry | SubmissionRejected] = [
                add_submission(submission=submissions[0], **kw)]
        except ZooError as e:
            raise ZooError(f"rejected, the board is unchanged: {e}") from None
    else:
        results = list(add_submissions(submissions=submissions, **kw))
    rejected = 0
    for path, res in zip(submissions, results, strict=True):
        if isinstance(res, SubmissionRejected):
            rejected += 1
            click.echo(f"rejected {path} (the board is unchanged by it): {res}", err=True)
        else:
            _print_entry(res)
    if rejected:
        raise ZooError(f"{rejected} of {len(submissions)} submissions rejected; the board "
                       "holds the others")


def _print_entry(entry: BoardEntry) -> None:
    from benchmarks.table import print_table

    if entry.feedback:  # a held-out board: the feedback half only
        print_table(("task", "main score", "feedback score"),
                    ((s.task, s.main_score, s.main) for s in entry.feedback))
        click.echo("ranking scores stay private until the next `bench leaderboard release`")
    else:
        print_table(("task", "main score", "board's score"),
                    ((s.task, s.main_score, s.main) for s in entry.scores))


@leaderboard_group.command("init")
@click.option("--recipe", required=True, type=click.Path(exists=True, dir_okay=False,
                                                          path_type=Path),
              help="The public zoo's recipe (cards/<zoo>.yaml).")
@click.option("--board", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New board folder: gets the private held-out zoo (labels) and its key.")
@click.option("--view", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the label-free view to publish (no labels in it).")
@click.option("--public-zoo", type=_ZOO,
              help="The public zoo of the recipe: checked to share no model or weights, and "
                   "submissions made on it are refused with a pointer to the view.")
@click.option("--seed-offset", type=click.IntRange(min=1),
              help="Held-out seed = public seed + OFFSET (reproducible but guessable; default: "
                   "random secret seeds).")
@click.option("--test-fraction", default=0.5, show_default=True,
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Share of held-out models in the scored test split.")
@click.option("--ranking-fraction", default=0.5, show_default=True,
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Share of the test models whose rows decide the rank; the others' rows "
                   "give the feedback scores each submission gets back.")
@click.option("--ladder-margin", type=click.FloatRange(0, 1, min_open=True),
              help="A release publishes a ranking score only if it beats the best published "
                   "one by more than this, rounded to a multiple of it. Default: twice the "
                   "spread of chance ranking scores on this board, rounded up to 1, 2 or 5 "
                   "x 10^k (about the noise of a difference of two entries' scores).")
@click.option("--max-entries-per-author", default=5, show_default=True,
              type=click.IntRange(min=1), help="Entries per author name between two releases.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where non-bundled source datasets live.")
def init_cmd(recipe: Path, board: Path, view: Path, public_zoo: Path | None,
             seed_offset: int | None, test_fraction: float, ranking_fraction: float,
             ladder_margin: float | None, max_entries_per_author: int,
             data_dir: Path | None) -> None:
    """Make a held-out board: build its private zoo from RECIPE with other seeds, split its
    test models secretly into feedback and ranking halves, write the label-free view to
    publish."""
    from benchmarks.leaderboard.heldout import init_board

    index = init_board(recipe=recipe, board=board, view=view, public_zoo=public_zoo,
                       seed_offset=seed_offset, test_fraction=test_fraction,
                       ranking_fraction=ranking_fraction, ladder_margin=ladder_margin,
                       max_entries_per_author=max_entries_per_author, data_dir=data_dir,
                       progress=click.echo)
    assert index.heldout is not None
    click.echo(f"view {index.heldout.view.name} {index.heldout.view.content_hash}: publish "
               f"{view} (e.g. `hf upload ORG/{index.heldout.view.name} {view} --repo-type "
               "dataset`); keep the board folder private")


@leaderboard_group.command("release")
@click.option("--board", required=True, type=_ZOO, help="A held-out board.")
def release_cmd(board: Path) -> None:
    """Publish the ranking scores of the entries added since the last release, through the
    Ladder: an entry's ranking score (mean of its tasks' main scores on the ranking half) is
    published only if it beats the best published one by more than the board's margin,
    rounded to a multiple of it. Render or publish the board afterwards."""
    from benchmarks.leaderboard.board import release_board

    rel = release_board(board=board, progress=click.echo)
    for step in rel.steps:
        shown = f"{step.published:g}" if step.published is not None else "not above the best"
        click.echo(f"  {step.id}: {shown}")


@leaderboard_group.command("view")
@click.option("--board", required=True, type=_ZOO, help="A held-out board.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to (re-)write the board's label-free view to.")
def view_cmd(board: Path, out: Path) -> None:
    """Re-create the label-free view of a held-out BOARD (the same bytes as at init)."""
    from benchmarks.leaderboard.heldout import make_view

    vm = make_view(board=board, out=out)
    click.echo(f"wrote {out}: {vm.name} {vm.content_hash} ({vm.num_rows} rows)")


@leaderboard_group.command("verify")
@click.argument("entry")
@click.option("--board", required=True, type=_ZOO, help="A held-out board.")
@click.option("--method", required=True,
              help="The installed method to re-run (module:object or a registered name).")
@click.option("--zoo", required=True, type=_ZOO, help="The public zoo the method trains on.")
@click.option("--tolerance", default=DEFAULT_TOLERANCE, show_default=True,
              type=click.FloatRange(min=0), help="Largest |re-run - recorded| score accepted.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where non-bundled source datasets live.")
def verify_cmd(entry: str, board: Path, method: str, zoo: Path, tolerance: float,
               data_dir: Path | None) -> None:
    """Re-run METHOD on the board's label-free view; mark ENTRY verified if it reproduces."""
    from benchmarks.leaderboard.verify import verify_entry

    try:
        e = verify_entry(board=board, entry=entry, method=method, zoo=zoo,
                         tolerance=tolerance, data_dir=data_dir, progress=click.echo)
    except ZooError as err:
        raise ZooError(f"not verified, the board is unchanged: {err}") from None
    assert e.verification is not None
    click.echo(f"verified {e.id} (max |diff| {e.verification.max_abs_diff:.3g})")


@leaderboard_group.command("render")
@click.option("--board", required=True, type=_ZOO, help="Board folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Site folder (index.html, leaderboard.md, leaderboard.csv).")
def render_cmd(board: Path, out: Path) -> None:
    """Render BOARD as a static HTML page, Markdown and CSV."""
    from benchmarks.leaderboard.render import render_board

    paths = render_board(board=board, out=out)
    for p in paths:
        click.echo(f"wrote {p}")


@leaderboard_group.command("publish")
@click.option("--board", required=True, type=_ZOO, help="Board folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Hub dataset folder to write (README.md + data/*.parquet).")
@click.option("--repo-id", help="Also upload to this Hub dataset repo (needs network, token).")
@click.option("--private", is_flag=True, help="Create the Hub repo as private.")
def publish_cmd(board: Path, out: Path, repo_id: str | None, private: bool) -> None:
    """Write BOARD as a Hub dataset folder (and upload it with --repo-id)."""
    from benchmarks.leaderboard.publish import publish_board

    root = publish_board(board=board, out=out, repo_id=repo_id, private=private)
    click.echo(f"wrote {root}" + (f" and uploaded it to {repo_id}" if repo_id else ""))


@click.group(cls=ZooGroup)
def cli() -> None:
    """Leaderboard commands (also available as `bench submit` / `bench leaderboard`)."""


cli.add_command(submit_cmd)
cli.add_command(leaderboard_group)


def main() -> None:
    """Entry point of ``python -m benchmarks.leaderboard.cli``."""
    cli()


if __name__ == "__main__":
    main()
