"""Tasks on the ResNet-18 seed zoos (``cards/resnet18-*.yaml``; a GPU is advised).

Only the seed varies, so there is no hyperparameter to classify. No generation task: its
novelty score compares every sample with every training checkpoint held in memory, which for
700 train models x 11 checkpoints x 11.2M parameters is about 345 GB. Suites
``resnet18-cifar10-v1``, ``resnet18-cifar100-v1``, ``resnet18-tiny_imagenet-v1``.
"""

from benchmarks.tasks.families import register_zoo_tasks
from benchmarks.tasks.metadata import FinetuneSpec
from benchmarks.tasks.zoos import RESNET18_CIFAR10, RESNET18_CIFAR100, RESNET18_TINY_IMAGENET

#: Fine-tuning as in the zoos (batch 256), a few epochs, two models per seed.
INIT = FinetuneSpec(source=None, epochs=3, n_models=2, lr=1e-3, batch_size=256)

RESNET18_CIFAR10_TASKS = register_zoo_tasks(
    RESNET18_CIFAR10, about="ResNet-18 on CIFAR-10", classify=(), init=INIT, generation=None)
RESNET18_CIFAR100_TASKS = register_zoo_tasks(
    RESNET18_CIFAR100, about="ResNet-18 on CIFAR-100", classify=(), init=INIT, generation=None)
RESNET18_TINY_IMAGENET_TASKS = register_zoo_tasks(
    RESNET18_TINY_IMAGENET, about="ResNet-18 on Tiny-ImageNet", classify=(), init=INIT,
    generation=None)
