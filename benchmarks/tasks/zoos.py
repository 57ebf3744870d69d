"""Zoos that built-in tasks are pinned to."""

from __future__ import annotations

from benchmarks.tasks.metadata import ZooRef

#: CNN-s trained on sklearn digits (``cards/digits-cnn_s.yaml``).
DIGITS_CNN_S = ZooRef(name="digits-cnn_s", version="1.0.0")
