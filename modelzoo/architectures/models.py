"""The registered architectures: Model Zoos CNNs, the CTC small CNN, an MLP and CIFAR ResNets.

Small-image rule: for inputs under 28 px (e.g. 8x8 ``digits``) the small CNNs pad their
convolutions ("same"-style) so every layer keeps a valid size; at 28/32 px they match the
published parameter counts (CNN-s 2,464 on MNIST, CNN-l 10,853 on CIFAR-10, CTC 4,970).
"""

from __future__ import annotations

from torch import nn

from modelzoo.architectures.registry import activation as act
from modelzoo.architectures.registry import register_arch


def _pad(k: int, image_size: int) -> int:
    return k // 2 if image_size < 28 else 0


@register_arch(description="MLP: flatten -> hidden layers -> classes")
def mlp(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    activation: str,
    dropout: float,
    hidden: tuple[int, ...] = (32,),
) -> nn.Module:
    """Multi-layer perceptron on flattened images."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_channels * image_size * image_size
    for h in hidden:
        layers += [nn.Linear(width, h), act(activation), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register_arch(description="Model Zoos CNN-s: 3 conv (8,6,4) + 2 dense; 2,464 params on MNIST")
def cnn_s(
    *, in_channels: int, num_classes: int, image_size: int, activation: str, dropout: float
) -> nn.Module:
    """Small CNN of the Model Zoos dataset (MNIST/Fashion-MNIST)."""
    p5, p2 = _pad(5, image_size), (1 if image_size < 28 else 0)
    s = image_size
    s = (s + 2 * p5 - 4) // 2
    s = (s + 2 * p5 - 4) // 2
    s = s + 2 * p2 - 1
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 5, padding=p5), nn.MaxPool2d(2), act(activation),
        nn.Conv2d(8, 6, 5, padding=p5), nn.MaxPool2d(2), act(activation),
        nn.Conv2d(6, 4, 2, padding=p2), act(activation),
        nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(4 * s * s, 20), act(activation), nn.Dropout(dropout),
        nn.Linear(20, num_classes),
    )  # fmt: skip


@register_arch(description="Model Zoos CNN-l: 3 conv (16,32,15) + 2 dense; 10,853 on CIFAR-10")
def cnn_l(
    *, in_channels: int, num_classes: int, image_size: int, activation: str, dropout: float
) -> nn.Module:
    """Large CNN of the Model Zoos dataset (SVHN/CIFAR-10)."""
    p = _pad(3, image_size)
    s = image_size
    for _ in range(3):
        s = (s + 2 * p - 2) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=p), nn.MaxPool2d(2), act(activation),
        nn.Conv2d(16, 32, 3, padding=p), nn.MaxPool2d(2), act(activation),
        nn.Conv2d(32, 15, 3, padding=p), nn.MaxPool2d(2), act(activation),
        nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(15 * s * s, 20), act(activation), nn.Dropout(dropout),
        nn.Linear(20, num_classes),
    )  # fmt: skip


@register_arch(description="CTC small CNN: 3 conv x 16 (stride 2), GAP, dense; 4,970 params")
def ctc_cnn(
    *, in_channels: int, num_classes: int, image_size: int, activation: str, dropout: float
) -> nn.Module:
    """Small CNN of "Predicting Neural Network Accuracy from Weights" (Unterthiner et al.)."""
    p = _pad(3, image_size)
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, stride=2, padding=p), act(activation),
        nn.Conv2d(16, 16, 3, stride=2, padding=p), act(activation),
        nn.Conv2d(16, 16, 3, stride=2, padding=p), act(activation),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(16, num_classes),
    )  # fmt: skip


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with optional BatchNorm."""

    def __init__(self, cin: int, cout: int, stride: int, activation: str, norm: str) -> None:
        super().__init__()
        bias = norm == "none"

        def bn(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if norm == "bn" else nn.Identity()

        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.bn1 = bn(cout)
        self.act1 = act(activation)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.bn2 = bn(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=bias), bn(cout))
        self.act2 = act(activation)

    def forward(self, x):  # noqa: D102
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem, no max-pool, four stages of basic blocks."""

    def __init__(
        self,
        blocks: tuple[int, int, int, int],
        *,
        in_channels: int,
        num_classes: int,
        activation: str,
        dropout: float,
        norm: str = "bn",
        width: int = 64,
    ) -> None:
        super().__init__()
        if norm not in ("bn", "none"):
            raise ValueError(f"norm must be 'bn' or 'none', not {norm!r}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=norm == "none")
        self.bn1 = nn.BatchNorm2d(width) if norm == "bn" else nn.Identity()
        self.act = act(activation)
        layers = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            stage = [BasicBlock(cin, cout, 1 if i == 0 else 2, activation, norm)]
            stage += [BasicBlock(cout, cout, 1, activation, norm) for _ in range(n - 1)]
            layers.append(nn.Sequential(*stage))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):  # noqa: D102
        x = self.act(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.drop(self.pool(x).flatten(1)))


@register_arch(description="ResNet-18, CIFAR variant (norm='bn' or 'none')", permutable=False)
def resnet18(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    activation: str,
    dropout: float,
    norm: str = "bn",
    width: int = 64,
) -> nn.Module:
    """ResNet-18 for 32x32 inputs (11.2M params at width 64)."""
    return ResNet((2, 2, 2, 2), in_channels=in_channels, num_classes=num_classes,
                  activation=activation, dropout=dropout, norm=norm, width=width)


@register_arch(description="ResNet-34, CIFAR variant (norm='bn' or 'none')", permutable=False)
def resnet34(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    activation: str,
    dropout: float,
    norm: str = "bn",
    width: int = 64,
) -> nn.Module:
    """ResNet-34 for 32x32 inputs (21.3M params at width 64)."""
    return ResNet((3, 4, 6, 3), in_channels=in_channels, num_classes=num_classes,
                  activation=activation, dropout=dropout, norm=norm, width=width)
