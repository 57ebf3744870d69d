"""README.md dataset cards: Hub metadata (``huggingface_hub.DatasetCardData``) plus prose."""

from __future__ import annotations

from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData


def dataset_card(body: str, **metadata: Any) -> str:
    """A README.md: YAML front matter from ``metadata`` (``configs``, ``license``, ``tags``, ...)
    then ``body``; ``datasets.load_dataset(folder)`` reads the ``configs`` of the front matter.
    """
    data = DatasetCardData(**metadata)
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))
