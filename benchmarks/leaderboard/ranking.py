"""A board a submitter who never looks at a weight cannot climb: secret feedback / ranking
halves, the Ladder, per-author limits.

**The attack.** Held-out labels stop copying labels, but every score a board returns is a
little information about its labels. The boosting attack on holdout reuse (Blum & Hardt
2015) needs nothing else: submit many random predictions under new names, keep those that
scored above the median, combine them (majority vote per row for classification, a
sign-weighted sum for regression) and submit the combination. Each kept probe is slightly
correlated with the labels *of the rows it was scored on*; their vote is strongly so. On a
board that ranks by the scores it returns, 40 such probes beat an honest method (issue 23);
more probes, or probes that change one row at a time through a regression error, go further.

**The defence, and why this one.**

1. *Two halves* (Kaggle's public / private split). ``bench leaderboard init`` splits the
   held-out test models once, by model and secretly (the models in the order of an HMAC of
   their id under the board's key; the first ``ranking_fraction`` of them rank), into a
   *feedback* half and a *ranking* half. ``add`` returns, and the page shows, only feedback
   scores; the rank comes from the ranking half, whose scores are never returned per
   submission. Whatever a submitter learns from feedback is about feedback rows. Random
   probes are independent across rows, and the halves share no model (checkpoints of a
   model, which share its hyperparameters and nearly its accuracy, are never split), so a
   combination selected on feedback scores is a random guess on ranking rows: its ranking
   score is chance, however many probes went into it. A one-row probe learns one feedback
   label, or learns that its row is a ranking row (the feedback score does not move), which
   says nothing about that row's label.
2. *The Ladder* (Blum & Hardt 2015), for the ranking scores themselves. If releases
   published every ranking score, probes in one release could be boosted into an entry of
   the next. So a release (``bench leaderboard release``) takes the entries added since the
   previous one in the order they were added and publishes an entry's ranking score only if
   it beats the board's best published ranking score by more than ``ladder_margin``, rounded
   to a multiple of the margin; otherwise the page says "not above the best". A probe that
   is not better than the best (any random one, once an honest method is on the board)
   reveals nothing; each published number is a new best, so there are at most about
   (score range) / margin of them. Blum & Hardt bound the Ladder's leaderboard error by
   O((log(k n))^(1/3) / n^(1/3)) for k submissions on n rows, whatever the submitters do.
   The margin should be about the noise of a difference of two entries' ranking scores: by
   default ``init`` sets it to twice the standard deviation of the ranking score of chance
   predictions (100 random re-assignments of the ranking rows' labels; :func:`auto_margin`),
   rounded up to 1, 2 or 5 times a power of ten: 0.01 for thousands of ranking rows, 0.2 for
   the 18 of the test suite's tiny board. Below the noise, the best of many random probes
   would beat a weak honest method by luck alone, adaptively or not.
3. *Per-author limits*: at most ``max_entries_per_author`` entries per author name between
   two releases (entries without authors share one quota), recorded on the board.

Why both: the Ladder alone would answer every submission from the rows it ranks by, and
its guarantee, an error of order (log(k n) / n)^(1/3), is loose on the few hundred rows of
a small board; the split alone would let the ranking scores published at one release feed
the boosting of the next. Rounding feedback scores would not help: feedback does not rank.

**What the board can and cannot enforce.** It enforces the split (it computes both halves
itself; the submitter cannot tell which rows rank until a row probe shows it, and even then
learns no label), the Ladder (releases publish nothing else), the limits per *author name*,
one entry per method version and no re-sent predictions. It cannot tell people from names:
one person under many names (sybils) passes the author limit, which is why the bound comes
from the split and the Ladder, not from the limit; the limit only slows honest over-eager
submitters and leaves a record. It cannot stop a submitter from running the networks, or
a maintainer from leaking the key. Initialization / generation tasks are scored by
fine-tuning / evaluating the submitted weights, not against per-row labels, so their scores
are the same on both halves.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from benchmarks.leaderboard.errors import SubmissionLimitError
from benchmarks.leaderboard.schema import BoardEntry, BoardIndex, BoardRules, LadderStep
from benchmarks.scoring import score_predictions

__all__ = ["FEEDBACK", "RANKING", "author_key", "auto_margin", "check_author_limit", "ladder",
           "ranking_models", "ranking_score", "split_masks"]

#: Names of the two halves of a held-out board's test rows.
FEEDBACK, RANKING = "feedback", "ranking"


def ranking_models(secret: bytes, model_ids: Iterable[str], fraction: float) -> set[str]:
    """The test models whose rows rank: the first ``round(fraction * n)`` (at least one,
    and one fewer than all) of the ``n`` distinct models in the order of
    HMAC-SHA256(key, ``"ranking\\0" + model id``): a secret, fixed, balanced draw.

    Raises:
        ValueError: fewer than two models (no two halves).
    """
    models = sorted(set(model_ids))
    if len(models) < 2:
        raise ValueError(f"{len(models)} test model(s): a board needs at least two to split "
                         "into feedback and ranking halves")
    key = {m: hmac.new(secret, f"ranking\x00{m}".encode(), hashlib.sha256).digest()
           for m in models}
    k = min(max(1, round(fraction * len(models))), len(models) - 1)
    return set(sorted(models, key=key.__getitem__)[:k])


def split_masks(secret: bytes, model_ids: Sequence[str],
                fraction: float) -> dict[str, np.ndarray]:
    """Boolean masks of the feedback and ranking rows, for rows of ``model_ids`` (one per
    test row, in row order)."""
    ranking = ranking_models(secret, model_ids, fraction)
    r = np.fromiter((m in ranking for m in model_ids), dtype=bool, count=len(model_ids))
    return {FEEDBACK: ~r, RANKING: r}


def ranking_score(entry: BoardEntry) -> float:
    """An entry's ranking score: the unweighted mean of its tasks' main scores on the
    ranking half (NaN if it has none)."""
    means = [s.main.mean for s in entry.ranking]
    return statistics.fmean(means) if means else math.nan


def ladder(scores: Sequence[tuple[str, float]], *, best: float | None,
           margin: float) -> list[LadderStep]:
    """The Ladder over ``(entry id, ranking score)`` in the order added: publish a score
    only if it beats the published best (``best``; None: nothing published yet) by more than
    ``margin``, rounded to a multiple of ``margin``; it is then the new best."""
    steps = []
    for eid, score in scores:
        published = None
        if math.isfinite(score) and (best is None or score > best + margin):
            published = round(round(score / margin) * margin, 12) + 0.0  # no -0.0
            best = published
        steps.append(LadderStep(id=eid, published=published, best=best))
    return steps


def auto_margin(labels: Sequence[tuple[str, np.ndarray]], *, resamples: int = 100,
                seed: int = 0) -> float:
    """The Ladder's default margin: twice the standard deviation of the ranking score
    (mean over tasks of the main metric) of chance predictions, each task's ranking-row
    labels re-assigned to its rows at random, rounded up to 1, 2 or 5 times a power of ten.

    Args:
        labels: per property task, its main metric and the labels of the ranking rows.
        resamples: random re-assignments.
        seed: of the re-assignments.
    """
    if not labels:
        return 0.01
    rng = np.random.default_rng(seed)
    means = [statistics.fmean(score_predictions((metric, ), y, rng.permutation(y))[metric]
                              for metric, y in labels) for _ in range(resamples)]
    spread = 2 * float(np.std(means))
    if not spread > 0:
        return 0.01
    power = 10.0 ** math.floor(math.log10(spread))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= spread * (1 - 1e-9))
    return min(1.0, float(f"{step:.1g}"))


def author_key(name: str) -> str:
    """An author name as the limit counts it (case and spacing ignored)."""
    return " ".join(name.split()).casefold()


def check_author_limit(index: BoardIndex, authors: Sequence[str], rules: BoardRules) -> None:
    """Refuse an entry whose authors already have ``rules.max_entries_per_author`` entries
    waiting for the next release.

    Raises:
        SubmissionLimitError: an author is at the limit.
    """
    released = index.released()
    pending: Counter[str] = Counter()
    for rec in index.entries:
        if rec.id not in released:
            pending.update({author_key(a) for a in rec.authors} or {""})
    for key in sorted({author_key(a) for a in authors} or {""}):
        if pending[key] >= rules.max_entries_per_author:
            who = f"author {key!r}" if key else "entries without an author (one quota)"
            raise SubmissionLimitError(
                f"{who}: {pending[key]} entries already wait for the next release; this "
                f"board takes at most {rules.max_entries_per_author} per author name between "
                "two releases (`bench leaderboard release`). Submit again after the release.")
