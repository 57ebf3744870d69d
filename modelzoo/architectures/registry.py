"""Architecture registry (timm-style): ``@register_arch`` factories and ``create_model``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from modelzoo.errors import ZooError
from modelzoo.registry import Registry

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leakyrelu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    """Instantiate an activation by name."""
    if name not in ACTIVATIONS:
        raise ZooError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass(frozen=True)
class ArchInfo:
    """A registered architecture.

    Attributes:
        name: registry name.
        factory: ``factory(in_channels=, num_classes=, image_size=, activation=, dropout=, **kw)``.
        description: one line for ``zoo archs``.
        stackable: whether the population trainer may vmap it (no in-place buffer updates
            that break ``torch.func``); otherwise the per-model loop is used.
        permutable: whether ``sane.augment`` can permute its neurons.
        defaults: default extra kwargs.
    """

    name: str
    factory: Callable[..., nn.Module]
    description: str = ""
    stackable: bool = True
    permutable: bool = True
    defaults: dict[str, Any] = field(default_factory=dict)


ARCHITECTURES: Registry[ArchInfo] = Registry("architecture", group="modelzoo.architectures")


def register_arch(
    name: str | None = None,
    *,
    description: str = "",
    stackable: bool = True,
    permutable: bool = True,
    **defaults: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model factory under ``name`` (default: the function name)."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        ARCHITECTURES.add(
            key,
            ArchInfo(key, fn, description or (fn.__doc__ or "").strip().splitlines()[0],
                     stackable, permutable, dict(defaults)),
        )
        return fn

    return deco


def create_model(
    name: str,
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    activation: str = "relu",
    dropout: float = 0.0,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered architecture.

    Args:
        name: registry name (see ``zoo archs``).
        in_channels: input channels (1 grayscale, 3 RGB).
        num_classes: output classes.
        image_size: input height/width in pixels.
        activation: activation name (relu, tanh, sigmoid, gelu, leakyrelu, silu).
        dropout: dropout probability before dense layers.
        **kwargs: architecture-specific options (e.g. ``norm="none"`` for ResNets).
    """
    info = ARCHITECTURES.get(name)
    opts = {**info.defaults, **kwargs}
    return info.factory(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        activation=activation,
        dropout=dropout,
        **opts,
    )


def count_params(model: nn.Module) -> int:
    """Number of learnable parameters."""
    return sum(p.numel() for p in model.parameters())


def list_archs() -> list[ArchInfo]:
    """All registered architectures."""
    return [ARCHITECTURES.get(n) for n in ARCHITECTURES.names()]
