"""The built-in source datasets (registered on import)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from modelzoo.sources.core import SOURCES, LocalLayout, SourceSpec
from modelzoo.sources.formats import (
    CIFAR10_FILES,
    CIFAR100_FILES,
    MNIST_FILES,
    SVHN_FILES,
    TINY_FILES,
    RawSource,
    read_cifar10_folder,
    read_cifar100_folder,
    read_mnist_folder,
    read_svhn_folder,
    read_tiny_imagenet_folder,
)


def read_digits() -> RawSource:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.uint8)[:, None, :, :]
    return RawSource(
        pools={"train": (x, d.target.astype(np.int64))},
        origin="sklearn.datasets.load_digits (bundled)",
        scale=16.0,
    )


def _derived_digits(transform: Callable[[np.ndarray], np.ndarray], what: str) -> RawSource:
    """Digits with ``transform`` applied to the uint8 images (labels and pool unchanged)."""
    base = read_digits()
    x, y = base.pools["train"]
    return RawSource(
        pools={"train": (np.ascontiguousarray(transform(x)), y)},
        origin=f"{base.origin}, {what}",
        scale=base.scale,
    )


def read_digits_transposed() -> RawSource:
    """Bundled digits with every image transposed (rows <-> columns)."""
    return _derived_digits(lambda x: x.transpose(0, 1, 3, 2), "transposed")


def read_digits_inverted() -> RawSource:
    """Bundled digits with inverted intensities (``16 - x``: dark strokes on white)."""
    return _derived_digits(lambda x: (16 - x).astype(np.uint8), "inverted (16 - x)")


def _digits_spec(name: str, description: str, read: Callable[[], RawSource]) -> SourceSpec:
    """A bundled 8x8 digits source (10 classes, one pool split 60/20/20 stratified)."""
    return SourceSpec(
        name=name,
        description=description,
        num_classes=10,
        in_shape=(1, 8, 8),
        url="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
        bundled=read,
        partition="stratified",
    )


_MNIST_NAMES = tuple(n for pair in MNIST_FILES.values() for n in pair)

_SPECS = [
    _digits_spec("digits", "scikit-learn 8x8 handwritten digits, bundled (the default)",
                 read_digits),
    # derived from digits: same images, labels and (stratified) partition, a different input
    # distribution; each has its own fingerprint (the name and the transformed pixels enter it)
    _digits_spec("digits_transposed",
                 "scikit-learn 8x8 digits, every image transposed (derived, bundled)",
                 read_digits_transposed),
    _digits_spec("digits_inverted",
                 "scikit-learn 8x8 digits with inverted intensities (derived, bundled)",
                 read_digits_inverted),
    SourceSpec(
        name="mnist",
        description="MNIST handwritten digits, 28x28 grayscale",
        num_classes=10,
        in_shape=(1, 28, 28),
        url="https://ossci-datasets.s3.amazonaws.com/mnist/ (mirror of http://yann.lecun.com/exdb/mnist/)",
        local=LocalLayout(("MNIST/raw",), _MNIST_NAMES, read_mnist_folder, gz_ok=True),
        hub_id="ylecun/mnist",
    ),
    SourceSpec(
        name="fashion_mnist",
        description="Fashion-MNIST clothing images, 28x28 grayscale",
        num_classes=10,
        in_shape=(1, 28, 28),
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        local=LocalLayout(("FashionMNIST/raw",), _MNIST_NAMES, read_mnist_folder, gz_ok=True),
        hub_id="zalando-datasets/fashion_mnist",
    ),
    SourceSpec(
        name="svhn",
        description="SVHN cropped house-number digits, 32x32 colour",
        num_classes=10,
        in_shape=(3, 32, 32),
        url="http://ufldl.stanford.edu/housenumbers/ (train_32x32.mat, test_32x32.mat)",
        local=LocalLayout((".", "svhn", "SVHN"), tuple(SVHN_FILES.values()), read_svhn_folder),
        hub_id="ufldl-stanford/svhn",
        hub_config="cropped_digits",
    ),
    SourceSpec(
        name="cifar10",
        description="CIFAR-10 natural images, 32x32 colour",
        num_classes=10,
        in_shape=(3, 32, 32),
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        local=LocalLayout(
            ("cifar-10-batches-py",),
            CIFAR10_FILES["train"] + CIFAR10_FILES["test"],
            read_cifar10_folder,
        ),
        hub_id="uoft-cs/cifar10",
    ),
    SourceSpec(
        name="cifar100",
        description="CIFAR-100 natural images (100 fine labels), 32x32 colour",
        num_classes=100,
        in_shape=(3, 32, 32),
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        local=LocalLayout(
            ("cifar-100-python",),
            CIFAR100_FILES["train"] + CIFAR100_FILES["test"],
            read_cifar100_folder,
        ),
        hub_id="uoft-cs/cifar100",
    ),
    SourceSpec(
        name="tiny_imagenet",
        description="Tiny-ImageNet, 200 classes, 64x64 colour (official val used as test)",
        num_classes=200,
        in_shape=(3, 64, 64),
        url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
        local=LocalLayout(
            ("tiny-imagenet-200",), TINY_FILES, partial(read_tiny_imagenet_folder, num_classes=200)
        ),
        hub_id="zh-plus/tiny-imagenet",
    ),
]

for _spec in _SPECS:
    SOURCES.add(_spec.name, _spec)
