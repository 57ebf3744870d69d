"""Zoos that built-in tasks are pinned to."""

from __future__ import annotations

from benchmarks.tasks.metadata import ZooRef

#: CNN-s trained on sklearn digits: the canonical demo zoo ``cards/digits-cnn_s.yaml``
#: (``zoo build cards/digits-cnn_s.yaml --out zoos/digits-cnn_s``). Pin ``content_hash`` once
#: the canonical zoo is published.
DIGITS_CNN_S = ZooRef(name="digits-cnn_s", version="1.0.0")
