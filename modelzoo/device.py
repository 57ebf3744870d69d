"""Torch device choice and mixed precision, shared by the zoo builder and SANE."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from modelzoo.errors import ZooError

__all__ = ["autocast", "resolve_device"]


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; any other torch device string as given.

    Raises:
        ZooError: the string is not a torch device, or it asks for CUDA on a machine without.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ZooError(f"invalid device {device!r} ({e}): use auto, cpu or cuda[:i]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"device {device!r} requested but CUDA is not available: use --device cpu")
    return dev


def autocast(device: str | torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; nothing (full float32) on any other device."""
    if torch.device(device).type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
