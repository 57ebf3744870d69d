"""Zoos that built-in tasks are pinned to."""

from __future__ import annotations

from benchmarks.tasks.metadata import ZooFacts, ZooRef

#: CNN-s trained on sklearn digits: the canonical demo zoo ``cards/digits-cnn_s.yaml``
#: (``zoo build cards/digits-cnn_s.yaml --out zoos/digits-cnn_s``). Pin ``content_hash`` once
#: the canonical zoo is published.
DIGITS_CNN_S = ZooRef(name="digits-cnn_s", version="1.0.0")

# ---------------------------------------------------------------- digits-v2 (anchor scale)
# Both build offline (sklearn digits) from their cards. A build's numbers depend neither on the
# thread count nor on the group size (modelzoo/training/invariant.py), but they do depend on
# the CPU kind (MKL / oneDNN pick kernels by vendor and instruction set, which round
# differently), so the pins carry the content hashes of reference builds on one CPU kind:
# torch 2.13.0 CPU on the project's 2-core x86-64 AMD EPYC (ATen capability AVX512), made
# at commit 9005f69 on 2026-12-02 with `zoo build <card> --threads 1` (the builds of issue 12,
# hashes d2dc16db... / 0c9ba9e9..., predate the position-independent activations and no longer
# come out of the code). A build on another CPU kind (an Intel Xeon with AVX-512 gives other
# hashes) or with other --models is scored with --allow-unpinned (results record its hash).

#: The Model Zoos hyperparameter grid on digits: ``cards/digits-cnn_s-hyp.yaml``
#: (1,280 models, 25 epochs; properties of ``digits-v2``).
DIGITS_CNN_S_HYP = ZooRef(
    name="digits-cnn_s-hyp", version="1.0.0",
    content_hash="sha256:fd35bf66253aafc3985fa59788c45f5866e87ec28d5700d78c6fb83ba49d68e9")

#: 1,000 seeds of one CNN-s configuration on digits: ``cards/digits-cnn_s-seed.yaml``
#: (initialization and generation tasks of ``digits-v2``).
DIGITS_CNN_S_SEED = ZooRef(
    name="digits-cnn_s-seed", version="1.0.0",
    content_hash="sha256:9da1617dfef2ba80151810d52bb4dfc109ad8c80d3b608a39d1cd691b91d848a")

# ------------------------------------------------- canonical zoos that need local data
# Pinned by name and version only: their content hash is pinned once someone builds and
# publishes them (they need MNIST / SVHN / CIFAR / Tiny-ImageNet files, and a GPU for most).

#: ``cards/mnist-cnn_s.yaml``: Model Zoos grid, CNN-s on MNIST.
MNIST_CNN_S = ZooRef(name="mnist-cnn_s", version="1.0.0")
#: ``cards/svhn-cnn_l.yaml``: Model Zoos grid, CNN-l on SVHN.
SVHN_CNN_L = ZooRef(name="svhn-cnn_l", version="1.0.0")
#: ``cards/cifar10-cnn_l.yaml``: Model Zoos grid, CNN-l on CIFAR-10.
CIFAR10_CNN_L = ZooRef(name="cifar10-cnn_l", version="1.0.0")
#: ``cards/ctc-mnist.yaml``: CTC small CNN zoo on MNIST.
CTC_MNIST = ZooRef(name="ctc-mnist", version="1.0.0")
#: ``cards/ctc-cifar10.yaml``: CTC small CNN zoo on CIFAR-10.
CTC_CIFAR10 = ZooRef(name="ctc-cifar10", version="1.0.0")
#: ``cards/resnet18-cifar10.yaml``: ResNet-18 seed zoo on CIFAR-10.
RESNET18_CIFAR10 = ZooRef(name="resnet18-cifar10", version="1.0.0")
#: ``cards/resnet18-cifar100.yaml``: ResNet-18 seed zoo on CIFAR-100.
RESNET18_CIFAR100 = ZooRef(name="resnet18-cifar100", version="1.0.0")
#: ``cards/resnet18-tiny_imagenet.yaml``: ResNet-18 seed zoo on Tiny-ImageNet.
RESNET18_TINY_IMAGENET = ZooRef(name="resnet18-tiny_imagenet", version="1.0.0")

# ------------------------------------------------------ digits-hetero-v1 (heterogeneous)

#: 4 architectures x 2 sources on digits: ``cards/digits-hetero.yaml`` (1,536 models; the
#: zoo of ``digits-hetero-v1``). Content hash of the AMD EPYC reference build, as for the
#: digits-v2 pins (the issue-16 build, 84616bec..., predates the invariant activations).
DIGITS_HETERO = ZooRef(
    name="digits-hetero", version="1.0.0",
    content_hash="sha256:d9e7f8022202b2ddd3c403feb684d74691db8cf228d466deaf7c988eeaf3fe4f")

# ------------------------------------------------- public zoos imported with `zoo import`
# Pinned by name, version and the facts checkable without the data (format, split protocol,
# the published split file's sha256, row counts and layout); their content hash is pinned once
# someone imports the real files (`zoo import ... ` prints it). Row counts of the CTC zoos are
# counted from NFN's split files (AllanYangZhou/nfn, experiments/predict_gen_data_splits/:
# each lists a pandas header line "0" and then a permutation of the zoo's row indices;
# sha256 and line counts, 270,001 and 269,893, rechecked at nfn commit ce78322).

#: ``zoo import ctc cifar10 --splits nfn --split-file cifar10_split.csv``: CIFAR10-GS.
CTC_CIFAR10_GS = ZooRef(name="ctc-cifar10-gs", version="1.0.0", expect=ZooFacts(
    format="ctc", split_protocol="nfn", num_rows=270_000, n_params={"ctc_cnn": 4970},
    split_file_sha256="04fb71937dc796fc64f6306457de9d95f0d2d8a343db856213b965a4953a4f67"))
#: ``zoo import ctc svhn_cropped --splits nfn --split-file svhn_split.csv``: SVHN-GS.
CTC_SVHN_GS = ZooRef(name="ctc-svhn-gs", version="1.0.0", expect=ZooFacts(
    format="ctc", split_protocol="nfn", num_rows=269_892, n_params={"ctc_cnn": 4970},
    split_file_sha256="c1dcfc521f38071bb4ac2af4866a38a4d2d468630ef60bb70f9ae75c681fc60c"))
#: ``zoo import modelzoos <MNIST zoo folder>``: Model Zoos CNN-s on MNIST (2,464 parameters;
#: its generator script plans 2,560 models, not pinned until checked on the Zenodo files).
MODELZOOS_MNIST_CNN_S = ZooRef(name="modelzoos-mnist-cnn_s", version="1.0.0", expect=ZooFacts(
    format="modelzoos", split_protocol="modelzoos", n_params={"cnn_s": 2464}))
#: ``zoo import modelzoos <SVHN zoo folder>``: Model Zoos CNN-s on (grayscale 28 px) SVHN.
MODELZOOS_SVHN_CNN_S = ZooRef(name="modelzoos-svhn-cnn_s", version="1.0.0", expect=ZooFacts(
    format="modelzoos", split_protocol="modelzoos", n_params={"cnn_s": 2464}))
