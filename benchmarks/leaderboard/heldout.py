"""``init_board``: make a held-out board (private labelled zoo + public label-free view).

The board's zoo is built from the public zoo's recipe with other seeds (by default random
secret ones in ``[2**32, 2**42)``; or public seed + ``seed_offset``) and another split seed,
so its model ids, initialisations and data orders differ from the public zoo's: no model or
checkpoint coincides (checked against the recipe's model ids, and against the public zoo's
weights when it is given). Secret seeds matter: the recipe is public and training is
bit-reproducible, so whoever knows the seeds can rebuild the held-out zoo with its labels.
A larger share of models goes to the test split, whose healthy checkpoints are the scored
rows.

The test models are then split once, secretly, into a feedback and a ranking half (the
board's :class:`~benchmarks.leaderboard.schema.BoardRules`, against adaptive submissions:
:mod:`benchmarks.leaderboard.ranking`).

Board folder after init::

    board.json      index with ``heldout`` (view pin, public zoo pin, seed offset, rules...)
    secret.key      HMAC key of the row ids (private; never published)
    heldout/        the held-out zoo, labels included (private)

and the view folder (publish it): see :mod:`benchmarks.leaderboard.view`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks.errors import TaskNotApplicableError
from benchmarks.evaluators.property import PropertyEvaluator
from benchmarks.leaderboard.board import INDEX_NAME, load_index
from benchmarks.leaderboard.errors import LeaderboardError
from benchmarks.leaderboard.ranking import auto_margin, ranking_models
from benchmarks.leaderboard.schema import BoardIndex, BoardRules, HeldOutInfo, ZooPin, json_bytes
from benchmarks.leaderboard.secret import SECRET_NAME, read_secret
from benchmarks.leaderboard.view import ViewManifest, ViewTarget, write_view
from benchmarks.registry import TASKS, evaluator_for
from benchmarks.zoo import EvalZoo, check_applicable
from modelzoo.builder.recipe import Recipe, load_recipe, make_recipe
from modelzoo.storage import SPLITS, load_zoo, open_manifest, read_manifest, weights_tensor
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir
from modelzoo.storage.manifest import split_hashes
from modelzoo.training.config import TrainConfig

HELDOUT_DIR = "heldout"
SEED_LOW, SEED_HIGH = 2**32, 2**42


def random_seeds(n: int) -> list[int]:
    """``n`` distinct secret seeds in ``[2**32, 2**42)`` (the trainer derives its streams
    from ``seed * 1_000_003 + epoch``, which stays below ``2**63``)."""
    out: set[int] = set()
    while len(out) < n:
        out.add(SEED_LOW + secrets.randbelow(SEED_HIGH - SEED_LOW))
    return sorted(out)


def heldout_recipe(
    recipe: Recipe, *, test_fraction: float, seed_offset: int | None = None,
    seeds: list[int] | None = None,
) -> Recipe:
    """The recipe of the held-out zoo: other seeds, another split seed, more test models.

    Args:
        recipe: the public recipe.
        test_fraction: share of models in the test split (the rest keeps the recipe's
            train : validation ratio).
        seed_offset: public seed + offset (reproducible, but guessable by anyone who knows
            it; the recipe is public and training is deterministic).
        seeds: the held-out seeds, one per seed the public recipe uses (default when no
            offset is given: fresh random secret seeds, :func:`random_seeds`).

    Raises:
        LeaderboardError: a bad fraction or offset, or a seed / model id that would coincide
            with one of the public recipe's.
    """
    if not 0 < test_fraction < 1:
        raise LeaderboardError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    used = sorted({c.seed for c in recipe.configs()})
    if seed_offset is not None:
        if seed_offset <= 0:
            raise LeaderboardError(f"--seed-offset must be positive, got {seed_offset}")
        seeds = [s + seed_offset for s in used]
    elif seeds is None:
        seeds = random_seeds(len(used))
    if len(seeds) != len(used) or len(set(seeds)) != len(seeds):
        raise LeaderboardError(f"need {len(used)} distinct held-out seeds, got {seeds}")
    raw = recipe.model_dump(mode="json")
    raw["grid"] = {**raw["grid"], "seed": list(seeds)}
    sp = recipe.splits
    rest = sp.train + sp.validation
    raw["splits"] = {"train": (1 - test_fraction) * sp.train / rest,
                     "validation": (1 - test_fraction) * sp.validation / rest,
                     "test": test_fraction, "seed": sp.seed + seeds[0]}
    held = make_recipe(raw)
    for k in range(10_000):  # the first split seed whose splits every task can use
        cand = held.model_copy(update={"splits": held.splits.model_copy(
            update={"seed": sp.seed + seeds[0] + k})})
        if _usable_splits(cand):
            held = cand
            break
    else:
        raise LeaderboardError("the recipe has too few models for a held-out zoo with train, "
                               "validation and test models; add models or change "
                               "--test-fraction")
    public_ids = {recipe.model_id(c) for c in recipe.configs()}
    clash = [c for c in held.configs() if recipe.model_id(c) in public_ids or c.seed in used]
    if clash:
        raise LeaderboardError(
            f"the held-out zoo would reuse seed {clash[0].seed} of the public recipe; choose a "
            "larger --seed-offset (or leave it out for random secret seeds)")
    return held


def _previous_seeds(root: Path) -> list[int] | None:
    """The seeds of an earlier, interrupted ``init`` into ``root`` (so it resumes), if any."""
    for path in (root / HELDOUT_DIR / "zoo.json", root / HELDOUT_DIR / ".build" / "recipe.json"):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        grid = (raw.get("recipe", raw) if isinstance(raw, dict) else {}).get("grid", {})
        seeds = grid.get("seed") if isinstance(grid, dict) else None
        if isinstance(seeds, list) and all(isinstance(x, int) for x in seeds):
            return sorted(seeds)
    return None


def _usable_splits(recipe: Recipe) -> bool:
    """Every split has a model, and the train split varies every hyperparameter the grid
    varies (so each classification task has two classes to learn from)."""
    by_split: dict[str, list[TrainConfig]] = {s: [] for s in SPLITS}
    for c in recipe.configs():
        by_split[recipe.splits.assign(recipe.model_id(c))].append(c)
    if not all(by_split.values()):
        return False
    varied = [n for n in type(recipe.grid).model_fields
              if n != "seed" and len(getattr(recipe.grid, n)) > 1]
    return all(len({getattr(c, n) for c in by_split["train"]}) > 1 for n in varied)


def _weight_hashes(path: Path) -> set[str]:
    out = set()
    for split in SPLITS:
        w = weights_tensor(load_zoo(path, split)).numpy()
        out |= {hashlib.sha256(np.ascontiguousarray(r, dtype=np.float32).tobytes()).hexdigest()
                for r in w}
    return out


def _check_disjoint(held: Path, public: Path) -> None:
    """Refuse a held-out zoo that shares a model id or a weight vector with the public zoo."""
    a, b = read_manifest(held), read_manifest(public)
    same = set(a.models) & set(b.models)
    if same:
        raise LeaderboardError(f"the held-out zoo shares model {sorted(same)[0]} with the public "
                               "zoo; choose another --seed-offset")
    if _weight_hashes(held) & _weight_hashes(public):
        raise LeaderboardError("a held-out checkpoint has exactly the weights of a public one; "
                               "choose another --seed-offset")


def _scored_tasks(zoo: EvalZoo, name: str, version: str) -> list[str]:
    """Registered tasks pinned to ``name`` v``version`` that the held-out zoo can score."""
    out = []
    for tname in TASKS.names():
        t = TASKS.get(tname)
        if (t.zoo.name, t.zoo.version) != (name, version) or \
                evaluator_for(t.type).items is None:  # not submittable (reconstruction)
            continue
        try:
            check_applicable(t, zoo)
        except TaskNotApplicableError:
            continue
        out.append(tname)
    return out


def _auto_margin(z: EvalZoo, ranking: np.ndarray, recipe: Recipe) -> float:
    """:func:`~benchmarks.leaderboard.ranking.auto_margin` over the property tasks the
    board's view serves, on its ranking rows."""
    labels = []
    for name in _scored_tasks(z, recipe.name, recipe.version):
        task = TASKS.get(name)
        ev = evaluator_for(task.type)
        if isinstance(ev, PropertyEvaluator):
            y = ev.labels(z.column("test", task.target))
            labels.append((task.main_score, np.asarray(y)[ranking]))
    return auto_margin(labels)


def make_view(*, board: str | Path, out: str | Path,
              data_dir: str | Path | None = None) -> ViewManifest:
    """(Re-)write the label-free view of a held-out board to ``out`` (deterministic: the
    same board always gives the same view and content hash).

    Raises:
        LeaderboardError: ``board`` is not a held-out board.
    """
    root = Path(board)
    index = load_index(root)
    if index.heldout is None:
        raise LeaderboardError(f"{root} is not a held-out board (make one with "
                               "`bench leaderboard init`)")
    return _write_view(root, index.heldout.zoo, index.heldout.view.name, out, data_dir,
                       index.heldout.rules)


def _write_view(root: Path, zoo_dir: str, name: str, out: str | Path,
                data_dir: str | Path | None, rules: BoardRules) -> ViewManifest:
    z = EvalZoo(root / zoo_dir, str(data_dir) if data_dir is not None else None)
    m = z.manifest
    best = z.target_model(SimpleNamespace(finetune=None))  # type: ignore[arg-type]
    return write_view(
        test=z.splits["test"], secret=read_secret(root), out=out, name=name,
        version=m.version, zoo={"name": m.name, "version": m.version},
        architectures=m.architectures, sources=m.sources,
        tasks=_scored_tasks(z, m.name, m.version),
        target=ViewTarget(architecture=best.architecture, activation=best.activation,
                          num_params=best.num_params),
        rules=rules, license=m.license)


def init_board(
    *,
    recipe: str | Path,
    board: str | Path,
    view: str | Path,
    public_zoo: str | Path | None = None,
    seed_offset: int | None = None,
    test_fraction: float = 0.5,
    ranking_fraction: float = 0.5,
    ladder_margin: float | None = None,
    max_entries_per_author: int = 5,
    data_dir: str | Path | None = None,
    key: bytes | None = None,
    progress: Callable[[str], None] | None = None,
) -> BoardIndex:
    """Build a board's private held-out zoo from ``recipe`` and write its label-free view.

    Args:
        recipe: the public zoo's recipe (``cards/<zoo>.yaml``).
        board: new board folder (must not hold a board yet).
        view: folder for the label-free view (publish it; it holds no labels).
        public_zoo: the public zoo of the recipe; if given, checked to share no model id or
            weight vector with the held-out zoo, and submissions made on it are refused with
            a pointer to the view.
        seed_offset: held-out seed = public seed + offset (reproducible but guessable:
            anyone can re-train the public recipe with it and join the weights). Default:
            random secret seeds, one per public seed, recorded only in the private board.
        test_fraction: share of held-out models in the (scored) test split.
        ranking_fraction: share of the test models whose rows decide the rank (the others
            give the feedback scores returned per submission).
        ladder_margin: a release publishes a ranking score only if it beats the best
            published one by more than this, rounded to a multiple of it (default: twice
            the spread of chance ranking scores on this board,
            :func:`~benchmarks.leaderboard.ranking.auto_margin`).
        max_entries_per_author: entries an author name may add between two releases.
        data_dir: where non-bundled source datasets live.
        key: the row-id HMAC key (default: 32 fresh random bytes; fix it only to make
            tests reproducible, a known key lets anyone map rows to checkpoints).
        progress: called with one line per step.

    Returns:
        The new board index.

    Raises:
        LeaderboardError: a board already there, seeds that collide, a public zoo of another
            recipe, or a held-out zoo with an empty split.
    """
    from pydantic import ValidationError

    from benchmarks.leaderboard.safety import validation_summary
    from modelzoo.builder import build_zoo

    say = progress or (lambda _msg: None)
    root = Path(board)
    if (root / INDEX_NAME).exists():
        raise LeaderboardError(f"{root} already holds a board; choose a new --board folder")
    try:
        rules = BoardRules(ranking_fraction=ranking_fraction,
                           ladder_margin=ladder_margin if ladder_margin is not None else 0.01,
                           max_entries_per_author=max_entries_per_author)
    except ValidationError as e:
        raise LeaderboardError(f"invalid board rules: {validation_summary(e)}") from None
    pub = load_recipe(recipe)
    held = heldout_recipe(pub, seed_offset=seed_offset, test_fraction=test_fraction,
                          seeds=None if seed_offset is not None else _previous_seeds(root))
    seeds = sorted({c.seed for c in held.configs()})
    pub_pin = None
    if public_zoo is not None:
        pm = open_manifest(public_zoo)  # its shards verified before anything is written
        if (pm.name, pm.version) != (pub.name, pub.version):
            raise LeaderboardError(f"--public-zoo is {pm.name} v{pm.version}, the recipe "
                                   f"builds {pub.name} v{pub.version}")
        pub_pin = ZooPin(name=pm.name, version=pm.version, content_hash=pm.content_hash,
                         split_hashes=pm.split_hashes or split_hashes(pm.models))
    ensure_dir(root)
    how = f"seeds +{seed_offset}" if seed_offset is not None else "random secret seeds"
    say(f"building the held-out zoo ({len(held.configs())} models, {how})")
    manifest = build_zoo(out=root / HELDOUT_DIR, recipe=held, data_dir=data_dir)
    empty = [s for s in SPLITS if not manifest.split_counts().get(s)]
    if empty:
        raise LeaderboardError(f"the held-out zoo has no {'/'.join(empty)} models; the recipe "
                               "needs more models (or another --test-fraction)")
    if public_zoo is not None:
        _check_disjoint(root / HELDOUT_DIR, Path(public_zoo))
    key_file = root / SECRET_NAME
    if key is not None and len(key) < 16:
        raise LeaderboardError("the row-id key must be at least 16 bytes")
    if not key_file.exists() or key is not None:
        secret = key if key is not None else secrets.token_bytes(32)
        atomic_write_bytes(key_file, (secret.hex() + "\n").encode())
        os.chmod(key_file, 0o600)
    z = EvalZoo(root / HELDOUT_DIR)
    test_ids = [str(m) for m in z.column("test", "model_id")]
    try:
        ranked = ranking_models(read_secret(root), test_ids, rules.ranking_fraction)
    except ValueError as e:
        raise LeaderboardError(f"the held-out zoo cannot be split: {e}; the recipe needs "
                               "more models (or a larger --test-fraction)") from None
    if ladder_margin is None:
        mask = np.fromiter((m in ranked for m in test_ids), dtype=bool, count=len(test_ids))
        rules = rules.model_copy(update={"ladder_margin": _auto_margin(z, mask, pub)})
    vm = _write_view(root, HELDOUT_DIR, f"{pub.name}-heldout", view, data_dir, rules)
    info = HeldOutInfo(zoo=HELDOUT_DIR, view=vm.pin, public_zoo=pub_pin, recipe=pub.name,
                       seed_offset=seed_offset, seeds=seeds, test_fraction=test_fraction,
                       rules=rules)
    index = BoardIndex(zoo=vm.pin, heldout=info)
    atomic_write_bytes(root / INDEX_NAME, json_bytes(index))  # the commit
    say(f"wrote the private held-out zoo to {root / HELDOUT_DIR} and the label-free view "
        f"({vm.num_rows} rows, tasks {', '.join(vm.tasks)}) to {view}; {len(ranked)} of "
        f"{len(set(test_ids))} test models rank, the others give feedback; Ladder margin "
        f"{rules.ladder_margin:g}" + (" (twice the spread of chance ranking scores)"
                                      if ladder_margin is None else ""))
    return index
