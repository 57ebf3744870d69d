"""Zoos that built-in tasks are pinned to."""

from __future__ import annotations

from benchmarks.tasks.metadata import ZooRef

#: CNN-s trained on sklearn digits (``zoo build --arch cnn_s --source digits``; the default
#: zoo name is ``<arch>-<source>``). Pin ``content_hash`` once the canonical zoo is published.
DIGITS_CNN_S = ZooRef(name="cnn_s-digits", version="1.0.0")
