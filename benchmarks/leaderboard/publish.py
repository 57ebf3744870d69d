"""Publish a board as a Hugging Face dataset: one Parquet of score rows plus a dataset card.

Layout (the Hub's no-script repository structure)::

    README.md                             YAML header (configs, license, tags) + the table
    data/train-00000-of-00001.parquet     one row per entry x task x metric

so ``datasets.load_dataset(folder)`` (or the repo id, once uploaded) loads it. ``repo_id``
uploads the folder with ``huggingface_hub`` (token from ``HF_TOKEN`` / ``hf auth login``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.leaderboard.board import load_board
from benchmarks.leaderboard.errors import LeaderboardError
from benchmarks.leaderboard.render import board_table, to_markdown
from modelzoo.errors import ZooError
from modelzoo.hub.upload import upload_folder as hub_upload
from modelzoo.storage.atomic import atomic_write_bytes, atomic_write_with, ensure_dir
from modelzoo.storage.card import dataset_card as card_markdown

DATA_FILE = "data/train-00000-of-00001.parquet"

#: Columns of the published rows.
ROW_SCHEMA = pa.schema([
    ("entry_id", pa.string()),
    ("rank", pa.int32()),
    ("method", pa.string()),
    ("method_version", pa.string()),
    ("display_name", pa.string()),
    ("authors", pa.list_(pa.string())),
    ("url", pa.string()),
    ("zoo_name", pa.string()),
    ("zoo_version", pa.string()),
    ("zoo_content_hash", pa.string()),
    ("suite", pa.string()),
    ("task", pa.string()),
    ("task_type", pa.string()),
    ("metric", pa.string()),
    ("is_main_score", pa.bool_()),
    ("split", pa.string()),
    ("rows", pa.string()),
    ("mean", pa.float64()),
    ("std", pa.float64()),
    ("values", pa.list_(pa.float64())),
    ("num_seeds", pa.int32()),
    ("added", pa.timestamp("s", tz="UTC")),
    ("submission_sha256", pa.string()),
    ("verified", pa.bool_()),
    ("ranking_score", pa.float64()),
    ("release", pa.int32()),
])


def board_rows(board: str | Path) -> list[dict[str, Any]]:
    """One row per entry x task x metric, with the entry's rank (recomputed scores only).

    Held-out boards: the metrics are those of the feedback half (``rows: "feedback"``); the
    ranking half appears only as the ranking score a release published (``ranking_score``,
    ``release``; null while pending or when it did not beat the best) and the rank (null
    when unranked). Open boards: every scored row (``rows: "all"``).
    """
    index, entries = load_board(board)
    table = board_table(index, entries)
    rows = []
    for r in table.rows:
        e, m = r.entry, r.entry.method
        for s in e.shown:
            for metric, stat in s.scores.items():
                rows.append({
                    "entry_id": e.id, "rank": r.rank, "method": m.name,
                    "method_version": m.version, "display_name": m.display_name,
                    "authors": list(m.authors), "url": m.url, "zoo_name": e.zoo.name,
                    "zoo_version": e.zoo.version, "zoo_content_hash": e.zoo.content_hash,
                    "suite": e.suite, "task": s.task, "task_type": s.type, "metric": metric,
                    "is_main_score": metric == s.main_score, "split": s.split,
                    "rows": "feedback" if table.heldout else "all", "mean": stat.mean,
                    "std": stat.std, "values": stat.values,
                    "num_seeds": len(stat.values), "added": e.added,
                    "submission_sha256": e.submission_sha256, "verified": e.verified,
                    "ranking_score": r.ranking, "release": r.release,
                })  # fmt: skip
    return rows


def dataset_card(board: str | Path, *, license: str = "cc-by-4.0") -> str:
    """README.md: YAML header with the ``configs`` the ``datasets`` loader reads, then prose."""
    index, entries = load_board(board)
    header = {
        "configs": [{"config_name": "default", "default": True,
                     "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
        "license": license,
        "pretty_name": f"Leaderboard {index.suite or ''}".strip(),
        "tags": ["leaderboard", "model-zoo", "weight-space-learning"],
    }
    zoo = index.zoo
    table = to_markdown(board_table(index, entries)).split("\n", 2)[2]  # drop the title
    return card_markdown(
        f"# Leaderboard: {index.suite}\n\n"
        + (f"Zoo: `{zoo.name}` v{zoo.version} (content `{zoo.content_hash}`).\n\n" if zoo else "")
        + "Each row is one metric of one task of one entry; every score was recomputed by the "
        "board from the submitted per-item predictions against the zoo's held-out labels"
        + ("; on this held-out board the metrics are those of the feedback half of the rows, "
           "and the rank comes from the ranking scores its releases published (column "
           "`ranking_score`)" if index.heldout is not None else "") + ".\n\n"
        "```python\nfrom datasets import load_dataset\nrows = load_dataset(REPO_OR_FOLDER, "
        "split=\"train\")\n```\n\n" + table,
        **header,
    )


def publish_board(
    *,
    board: str | Path,
    out: str | Path,
    repo_id: str | None = None,
    private: bool = False,
    token: str | None = None,
) -> Path:
    """Write the board as a Hub dataset folder at ``out``; upload it if ``repo_id`` is given.

    Raises:
        LeaderboardError: the board cannot be read, or the upload fails (the folder is
            complete either way and can be uploaded later).
    """
    rows = board_rows(board)
    root = ensure_dir(Path(out))
    table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
    data = ensure_dir(root / "data") / Path(DATA_FILE).name
    atomic_write_with(data, lambda f: pq.write_table(table, f))
    atomic_write_bytes(root / "README.md", dataset_card(board).encode())
    if repo_id is not None:
        upload_folder(root, repo_id=repo_id, private=private, token=token)
    return root


def upload_folder(folder: Path, *, repo_id: str, private: bool, token: str | None) -> None:
    """Create the dataset repo if needed and upload ``folder`` in one commit.

    Raises:
        LeaderboardError: offline, no network / token, or the Hub refused (message says which).
    """
    try:
        hub_upload(folder, repo_id=repo_id, private=private, token=token,
                   commit_message="Update leaderboard")  # fmt: skip
    except ZooError as e:
        raise LeaderboardError(
            f"cannot upload {folder} to the Hub dataset {repo_id}: {e}. The folder is complete "
            f"and can be uploaded later with `bench leaderboard publish --repo-id {repo_id}` "
            "or `hf upload`."
        ) from None
