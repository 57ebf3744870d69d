"""A leaderboard on disk and ``add_submission`` (validate, re-score, record atomically).

Layout of a board folder::

    board.json                 index: zoo, suite, one record per entry (the commit point)
    entries/<id>.json          one BoardEntry per accepted submission (recomputed scores)
    submissions/<id>.json      the submission file as received (for audits / re-scoring)
    heldout/, secret.key       held-out boards only (``bench leaderboard init``): the private
                               labelled zoo and the key of the view's row ids

An add writes the new entry and submission files (temp file, fsync, rename), then the new
index the same way; the index rename is the commit. Until then, readers see the old board:
files that the index does not name are ignored, and the next add deletes them. A failure
before the commit removes what the add wrote, so the folder is as it was. Adds hold an
exclusive lock on ``.lock`` (``filelock``), so concurrent adds cannot lose each other's entries.

Claimed scores are never trusted: the board records the scores it recomputes from the
predictions. Claims that differ beyond the tolerance are recorded as ``discrepancies`` and
reported; with ``strict=True`` such a submission is rejected instead.

Held-out boards answer an add with the feedback half's scores only, refuse authors over the
per-author limit, and publish ranking scores only at ``release_board`` (``bench leaderboard
release``), through the Ladder; why: :mod:`benchmarks.leaderboard.ranking`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import ValidationError

import modelzoo
from benchmarks.leaderboard.errors import (
    ClaimMismatchError,
    DuplicateSubmissionError,
    LeaderboardError,
    SubmissionRejected,
    ZooVersionError,
)
from benchmarks.leaderboard.ranking import check_author_limit, ladder, ranking_score
from benchmarks.leaderboard.safety import (
    parse_submission_bytes,
    read_bounded,
    read_submission_bytes,
    validation_summary,
)
from benchmarks.leaderboard.schema import (
    MAX_SUBMISSION_BYTES,
    BoardEntry,
    BoardIndex,
    IndexRecord,
    Release,
    Submission,
    json_bytes,
)
from benchmarks.leaderboard.score import DEFAULT_TOLERANCE, HeldOutZoo, rescore
from benchmarks.leaderboard.secret import read_secret
from benchmarks.results import utc_now
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir, fsync_dir, storage_error

INDEX_NAME = "board.json"
ENTRIES_DIR = "entries"
SUBMISSIONS_DIR = "submissions"
LOCK_NAME = ".lock"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def _sha256(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def submission_hashes(sub: Submission) -> tuple[str, str]:
    """``(submission hash, predictions hash)``: of the whole canonical submission, and of
    what is scored only (zoo, suite, per task: seeds and items; not the method card, the
    claims or the creation time), so re-sent predictions under a new name are caught."""
    tasks = sorted(({"task": t.task, "seeds": t.seeds, "items": t.items.model_dump(mode="json")}
                    for t in sub.tasks), key=lambda t: t["task"])
    return (_sha256(sub.model_dump(mode="json")),
            _sha256({"zoo": sub.zoo.content_hash, "suite": sub.suite, "tasks": tasks}))


def entry_id(sub: Submission, predictions_sha256: str) -> str:
    """``<method>-<version>-<hash prefix>``, file-name safe."""
    slug = _UNSAFE.sub("-", f"{sub.method.name}-{sub.method.version}".lower()).strip("-")
    return f"{slug[:100]}-{predictions_sha256.split(':')[1][:10]}"


def load_index(board: str | Path) -> BoardIndex:
    """The board's index (an empty one if the folder has none yet).

    Raises:
        LeaderboardError: the index exists but is not a valid board index.
    """
    path = Path(board) / INDEX_NAME
    if not path.exists():
        return BoardIndex()
    try:
        return BoardIndex.model_validate_json(read_bounded(path, max_bytes=256 << 20))
    except (ValidationError, ValueError) as e:
        detail = validation_summary(e) if isinstance(e, ValidationError) else str(e)
        raise LeaderboardError(f"{path} is not a valid leaderboard index: {detail}") from None


def load_board(board: str | Path) -> tuple[BoardIndex, list[BoardEntry]]:
    """The index and its entries, in index order (files the index does not name are ignored).

    Raises:
        LeaderboardError: no board there, or an entry is missing / invalid.
    """
    root = Path(board)
    if not root.is_dir():
        raise LeaderboardError(f"{root} is not a leaderboard folder (add a submission first: "
                               "`bench leaderboard add SUBMISSION --board DIR --zoo ZOO`)")
    index = load_index(root)
    entries = []
    for rec in index.entries:
        path = root / rec.file
        try:
            entry = BoardEntry.model_validate_json(read_bounded(path, max_bytes=64 << 20))
        except (ValidationError, ValueError, OSError, LeaderboardError) as e:
            detail = validation_summary(e) if isinstance(e, ValidationError) else str(e)
            raise LeaderboardError(f"board entry {path} is missing or invalid: {detail}") from None
        if entry.id != rec.id:
            raise LeaderboardError(f"board entry {path} has id {entry.id!r}, index says {rec.id!r}")
        entries.append(entry)
    return index, entries


def _check_duplicate(index: BoardIndex, sub: Submission, full: str, preds: str) -> None:
    for rec in index.entries:
        if rec.submission_sha256 == full:
            raise DuplicateSubmissionError(
                f"this submission is already on the board as entry {rec.id}")
        if rec.predictions_sha256 == preds:
            raise DuplicateSubmissionError(
                f"the same predictions are already on the board as entry {rec.id} (method "
                f"{rec.method} v{rec.method_version}); a board ranks each result once")
        if (rec.method, rec.method_version) == (sub.method.name, sub.method.version):
            raise DuplicateSubmissionError(
                f"method {sub.method.name} version {sub.method.version} is already on the board "
                f"(entry {rec.id}); submit a new version with `bench submit --method-version`")


def _check_board_zoo(index: BoardIndex, held: HeldOutZoo, sub: Submission) -> None:
    if index.zoo is not None and index.zoo != held.pin:
        raise ZooVersionError(
            f"this board ranks zoo {index.zoo.name} v{index.zoo.version} "
            f"({index.zoo.content_hash[:19]}...), but --zoo is {held.pin.name} "
            f"v{held.pin.version} ({held.pin.content_hash[:19]}...); pass the board's zoo")
    if index.suite is not None and index.suite != sub.suite:
        raise LeaderboardError(f"this board ranks suite {index.suite}, the submission is for "
                               f"{sub.suite}; use another --board for {sub.suite}")


def open_board_zoo(root: Path, index: BoardIndex, zoo: str | Path | None, *,
                   data_dir: str | Path | None = None) -> HeldOutZoo:
    """The zoo a board scores: its private held-out zoo, or (open boards) ``zoo``.

    Raises:
        LeaderboardError: an open board without ``zoo``, or a held-out board given one.
    """
    if index.heldout is not None:
        if zoo is not None:
            raise LeaderboardError(
                f"{root} is a held-out board: it scores its own private zoo "
                f"({root / index.heldout.zoo}); do not pass --zoo")
        return HeldOutZoo(root / index.heldout.zoo, data_dir=data_dir, heldout=index.heldout,
                          secret=read_secret(root))
    if zoo is None:
        raise LeaderboardError(f"{root} is an open board: pass the zoo it scores with --zoo "
                               "(or make a held-out board with `bench leaderboard init`)")
    return HeldOutZoo(zoo, data_dir=data_dir)


def _locked(root: Path) -> FileLock:
    """The board's exclusive lock (``filelock``: ``flock`` on POSIX, ``msvcrt`` on Windows)."""
    return FileLock(root / LOCK_NAME)


def _collect_garbage(root: Path, index: BoardIndex) -> None:
    """Delete files an interrupted add left behind (not named by the index, or temp files)."""
    keep = {rec.file for rec in index.entries} | {
        f"{SUBMISSIONS_DIR}/{rec.id}.json" for rec in index.entries}
    for folder in (ENTRIES_DIR, SUBMISSIONS_DIR):
        for f in (root / folder).iterdir() if (root / folder).is_dir() else ():
            rel = f"{folder}/{f.name}"
            if f.is_file() and rel not in keep:
                f.unlink()
    for f in root.glob(f".{INDEX_NAME}.tmp-*"):
        f.unlink()


def _check_limits(index: BoardIndex, sub: Submission) -> None:
    if index.heldout is not None:
        check_author_limit(index, sub.method.authors, index.heldout.rules)


def add_submission(
    *,
    submission: str | Path,
    board: str | Path,
    zoo: str | Path | None = None,
    max_bytes: int = MAX_SUBMISSION_BYTES,
    tolerance: float = DEFAULT_TOLERANCE,
    strict: bool = False,
    data_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> BoardEntry:
    """Validate, re-score and record a submission on a board.

    Args:
        submission: the submission JSON file (``bench submit``).
        board: board folder (created on the first accepted submission).
        zoo: the zoo an open board scores against; held-out boards (``bench leaderboard
            init``) score their own private zoo and take none.
        max_bytes: largest submission file accepted.
        tolerance: absolute difference above which a claim counts as a discrepancy.
        strict: reject (instead of record) a submission whose claims differ.
        data_dir: where non-bundled source datasets live.
        progress: called with one line per step.

    Returns:
        The recorded entry (with the board's recomputed scores; on held-out boards also the
        feedback and the private ranking halves').

    Raises:
        SubmissionRejected: unsafe / invalid file, other zoo, incomplete, duplicate, over the
            per-author limit, or (strict) claims that differ. The board is unchanged.
        LeaderboardError: the board folder is invalid or cannot be written.
    """
    root = Path(board)
    return _add(submission, root, _opener(root, zoo, data_dir), max_bytes=max_bytes,
                tolerance=tolerance, strict=strict, progress=progress)


def add_submissions(
    *,
    submissions: Sequence[str | Path],
    board: str | Path,
    zoo: str | Path | None = None,
    max_bytes: int = MAX_SUBMISSION_BYTES,
    tolerance: float = DEFAULT_TOLERANCE,
    strict: bool = False,
    data_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BoardEntry | SubmissionRejected]:
    """:func:`add_submission` for several files in order, opening the board's zoo once. Each
    file is its own add: validated, re-scored and committed, or rejected alone.

    Returns:
        Per file, its entry or the rejection (the board holds the accepted ones).

    Raises:
        LeaderboardError: the board folder is invalid or cannot be written (the files
            before the failing one stay added).
    """
    root = Path(board)
    held = _opener(root, zoo, data_dir)
    out: list[BoardEntry | SubmissionRejected] = []
    for path in submissions:
        try:
            out.append(_add(path, root, held, max_bytes=max_bytes, tolerance=tolerance,
                            strict=strict, progress=progress))
        except SubmissionRejected as e:
            out.append(e)
    return out


def _opener(root: Path, zoo: str | Path | None,
            data_dir: str | Path | None) -> Callable[[], HeldOutZoo]:
    """Opens the board's zoo on the first call (after the first file passed its checks),
    then returns the same one."""
    return functools.cache(lambda: open_board_zoo(root, load_index(root), zoo,
                                                  data_dir=data_dir))


def _add(submission: str | Path, root: Path, board_zoo: Callable[[], HeldOutZoo], *,
         max_bytes: int, tolerance: float, strict: bool,
         progress: Callable[[str], None] | None) -> BoardEntry:
    say = progress or (lambda _msg: None)
    data = read_submission_bytes(submission, max_bytes=max_bytes)
    sub = parse_submission_bytes(data, source=str(submission))
    full, preds = submission_hashes(sub)
    index = load_index(root)
    held = board_zoo()
    _check_board_zoo(index, held, sub)
    _check_duplicate(index, sub, full, preds)
    _check_limits(index, sub)
    say(f"re-scoring {len(sub.tasks)} task(s) of {sub.method.name} v{sub.method.version}")
    result = rescore(sub, held, tolerance=tolerance)
    if strict and result.discrepancies:
        raise ClaimMismatchError(
            "claimed scores differ from the board's recomputed scores (strict mode): "
            + "; ".join(result.discrepancies))
    eid = entry_id(sub, preds)
    entry = BoardEntry(
        id=eid, added=utc_now(), submission_sha256=full, predictions_sha256=preds,
        method=sub.method, zoo=sub.zoo, suite=sub.suite, submission_created=sub.created,
        submission_toolkit_version=sub.toolkit_version,
        board_toolkit_version=modelzoo.__version__, scores=result.scores,
        feedback=result.feedback, ranking=result.ranking,
        claimed=result.claimed, discrepancies=result.discrepancies)
    try:  # not ensure_dir: its write probe is named by pid only, so threads would collide
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(e, root) from None
    with _locked(root):
        index = load_index(root)  # again, under the lock
        _check_board_zoo(index, held, sub)
        _check_duplicate(index, sub, full, preds)
        _check_limits(index, sub)
        _collect_garbage(root, index)
        rec = IndexRecord(id=eid, file=f"{ENTRIES_DIR}/{eid}.json", submission_sha256=full,
                          predictions_sha256=preds, method=sub.method.name,
                          method_version=sub.method.version, added=entry.added,
                          authors=list(sub.method.authors))
        new_index = index.model_copy(update={
            "zoo": index.zoo or held.pin, "suite": index.suite or sub.suite,
            "entries": [*index.entries, rec]})
        written: list[Path] = []
        created = [root / d for d in (SUBMISSIONS_DIR, ENTRIES_DIR) if not (root / d).exists()]
        try:
            for folder, payload in ((SUBMISSIONS_DIR, data), (ENTRIES_DIR, json_bytes(entry))):
                path = ensure_dir(root / folder) / f"{eid}.json"
                atomic_write_bytes(path, payload)
                written.append(path)
            atomic_write_bytes(root / INDEX_NAME, json_bytes(new_index))  # the commit
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            fsync_dir(root)
            raise
    say(f"added entry {eid}")
    for note in result.discrepancies:
        say(f"warning: {note} (the board records its own score)")
    return entry


def release_board(*, board: str | Path,
                  progress: Callable[[str], None] | None = None) -> Release:
    """Publish ranking scores of a held-out board's entries added since the last release,
    through the Ladder (:func:`benchmarks.leaderboard.ranking.ladder`), and record the
    release in the index (atomically, under the board's lock).

    Returns:
        The release (what it published per entry).

    Raises:
        LeaderboardError: an open board (it ranks at once), or no entry since the last
            release.
    """
    say = progress or (lambda _msg: None)
    root = Path(board)
    with _locked(root):
        index, entries = load_board(root)
        if index.heldout is None:
            raise LeaderboardError(f"{root} is an open board: it ranks every entry at once and "
                                   "has no releases (held-out boards: `bench leaderboard init`)")
        done = index.released()
        pending = [e for e in entries if e.id not in done]
        if not pending:
            raise LeaderboardError(f"no entries on {root} since release "
                                   f"{len(index.releases)}; nothing to release")
        best = index.releases[-1].best if index.releases else None
        rules = index.heldout.rules
        steps = ladder([(e.id, ranking_score(e)) for e in pending], best=best,
                       margin=rules.ladder_margin)
        release = Release(number=len(index.releases) + 1, released=utc_now(),
                          margin=rules.ladder_margin, steps=steps)
        new_index = index.model_copy(update={"releases": [*index.releases, release]})
        atomic_write_bytes(root / INDEX_NAME, json_bytes(new_index))  # the commit
    published = [st for st in steps if st.published is not None]
    say(f"release {release.number}: {len(steps)} entries, {len(published)} above the best by "
        f"more than {rules.ladder_margin:g}" + (f" (best now {release.best:g})"
                                                if release.best is not None else ""))
    return release
