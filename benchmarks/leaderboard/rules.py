"""A held-out board's rules in plain words: on the view's card, the page, the Markdown and the
Hub card (one text, made from the board's :class:`~benchmarks.leaderboard.schema.BoardRules`)."""

from __future__ import annotations

from benchmarks.leaderboard.schema import BoardRules

__all__ = ["rules_text"]


def _num(x: float) -> str:
    return f"{x:g}"


def rules_text(rules: BoardRules) -> list[str]:
    """The rules of a held-out board with ``rules``: what it is, what is allowed, what a
    submitter sees, when ranking scores come out, the limits, what is enforced and what not."""
    pct = round(100 * rules.ranking_fraction)
    m = _num(rules.ladder_margin)
    return [
        "The board scores predictions on a held-out zoo: models of the same recipe as the "
        "public zoo, trained with other seeds, so no model or checkpoint of the public zoo is "
        "in it. Its labels (accuracies, losses, generalisation gap, epoch, hyperparameters) "
        "are never published; the public sees only this label-free view (weights, "
        "architecture, source, opaque row ids).",
        "Train and select your method on the public zoo only. A weight-space method predicts "
        "from the weights: running the networks on their source data (or any data) to "
        "measure accuracy, loss or behaviour is not a weight-space method and is not allowed.",
        "Do not try to recover the held-out labels by other means (re-training the recipe to "
        "match weights, contacting the maintainers, probing the board with many "
        "submissions).",
        "What a submitter sees: the board split the view's rows once, secretly and by model, "
        f"into a ranking half ({pct}% of the test models, every checkpoint of each) and a "
        "feedback half (the others). Adding a submission returns, and the page shows, its "
        "scores on the feedback half only. They do not decide the rank: tuning on them, with "
        "many submissions or by probing single rows, fits the feedback half and nothing "
        "else.",
        "When ranking scores come out: never per submission. At a release (`bench "
        "leaderboard release`, run by the maintainer) the entries added since the previous "
        "release are taken in the order they were added; an entry's ranking score (the mean "
        "of its tasks' main scores on the ranking half) is published only if it beats the "
        f"best published ranking score by more than {m}, and then rounded to a multiple of "
        f"{m} (the Ladder, Blum & Hardt 2015); otherwise the page says it was not above the "
        "best. Entries are ranked by their published ranking score.",
        f"Limits: at most {rules.max_entries_per_author} entries per author name between two "
        "releases (entries without an author share one quota), one entry per method "
        "version, and no predictions the board already holds under another name.",
        "Initialization / generation samples are scored by fine-tuning / evaluating them, "
        "not against per-row labels, so their scores are the same in both halves.",
        "What the board enforces: it recomputes every score from the submitted predictions "
        "against its private labels (claims are never trusted), refuses predictions for "
        "other rows, wrong counts, NaN / inf, submissions made on the public zoo, duplicates "
        "and entries over the author limit; it fine-tunes / evaluates submitted weights "
        "itself.",
        "What it cannot enforce: how the predictions were made (a submission could still run "
        "the networks on data), or who an author is: names are not identities, so one person "
        "under many names is not stopped by the author limit. What bounds probing is the "
        "split and the Ladder: probes learn about the feedback half only, and a release "
        "reveals at most one rounded number per entry that beats the best. Entries marked "
        "verified were re-run by the maintainer from the installed method on the label-free "
        "view with the same scores; unverified entries are the submitter's word on how they "
        "were made.",
    ]
