"""Tasks on the Model Zoos-grid zoos that need local data (MNIST, SVHN, CIFAR-10).

``cards/mnist-cnn_s.yaml``, ``cards/svhn-cnn_l.yaml``, ``cards/cifar10-cnn_l.yaml``: 256
configurations x 10 seeds; every varied hyperparameter is a classification task. Suites
``mnist-cnn_s-v1``, ``svhn-cnn_l-v1``, ``cifar10-cnn_l-v1`` (see :mod:`.suites`).
"""

from benchmarks.tasks.families import register_zoo_tasks
from benchmarks.tasks.metadata import FinetuneSpec
from benchmarks.tasks.zoos import CIFAR10_CNN_L, MNIST_CNN_S, SVHN_CNN_L

#: Hyperparameters the Model Zoos grid varies.
GRID = ("activation", "init", "optimizer", "lr", "weight_decay", "dropout")
INIT = FinetuneSpec(source=None, epochs=3, n_models=4)
GENERATION = FinetuneSpec(source=None, epochs=0, n_models=16, novelty_threshold=0.1)

MNIST_CNN_S_TASKS = register_zoo_tasks(MNIST_CNN_S, about="CNN-s on MNIST", classify=GRID,
                                       init=INIT, generation=GENERATION)
SVHN_CNN_L_TASKS = register_zoo_tasks(SVHN_CNN_L, about="CNN-l on SVHN", classify=GRID,
                                      init=INIT, generation=GENERATION)
CIFAR10_CNN_L_TASKS = register_zoo_tasks(CIFAR10_CNN_L, about="CNN-l on CIFAR-10",
                                         classify=GRID, init=INIT, generation=GENERATION)
