"""Tasks on the CTC small-CNN zoos (``cards/ctc-mnist.yaml``, ``cards/ctc-cifar10.yaml``).

Unterthiner et al. (2020) predict accuracy from weights on these zoos; their card varies seven
hyperparameters, each a classification task here. Suites ``ctc-mnist-v1``, ``ctc-cifar10-v1``.
"""

from benchmarks.tasks.families import register_zoo_tasks
from benchmarks.tasks.metadata import FinetuneSpec
from benchmarks.tasks.zoos import CTC_CIFAR10, CTC_MNIST

#: Hyperparameters the CTC cards vary.
GRID = ("activation", "init", "optimizer", "lr", "weight_decay", "dropout", "train_fraction")
INIT = FinetuneSpec(source=None, epochs=3, n_models=4)
GENERATION = FinetuneSpec(source=None, epochs=0, n_models=16, novelty_threshold=0.1)

CTC_MNIST_TASKS = register_zoo_tasks(CTC_MNIST, about="CTC CNN on MNIST", classify=GRID,
                                     init=INIT, generation=GENERATION)
CTC_CIFAR10_TASKS = register_zoo_tasks(CTC_CIFAR10, about="CTC CNN on CIFAR-10",
                                       classify=GRID, init=INIT, generation=GENERATION)
