"""The method protocol: what ``bench run --method`` accepts.

A *method* is any object with

* ``name: str`` (lower case letters, digits, ``.-_``; used in result paths), and
* ``meta() -> dict``: JSON-serialisable description (version, hyperparameters...) stored in
  every result file,

plus at least one capability:

* **features** (property prediction): ``features(dataset, manifest) -> np.ndarray`` returns one
  row of features per zoo row (checkpoint) of ``dataset`` (a ``datasets.Dataset`` of zoo
  rows, with the ``weights`` column, of one split). The runner then fits a head from sklearn on
  the train split, selects its regularisation on validation and scores on test. The optional
  attribute ``head`` picks it: ``"linear"`` (default: standardise + ``Ridge`` /
  ``LogisticRegression``) or ``"gbt"`` (``HistGradientBoostingRegressor`` / ``Classifier``).
* **fit / predict** (property prediction, own model):
  ``fit(train, *, target, task_type, validation, manifest, seed) -> None`` then
  ``predict(dataset, *, manifest) -> np.ndarray`` (one prediction per row: floats for
  ``task_type == "regression"``, class labels, e.g. ``"relu"``, for ``"classification"``).
  Model selection on ``validation`` is up to the method.
* **sample** (initialization and generation tasks):
  ``sample(*, zoo, manifest, target, n, seed) -> np.ndarray`` returns ``n`` flat weight
  vectors ``[n, P]`` in the layout of ``manifest.architectures[target.architecture]``, for
  models with ``target.activation``.
* **reconstruct** (reconstruction tasks): ``reconstruct(*, zoo, manifest, architecture,
  weights, seed) -> np.ndarray`` passes flat weight vectors ``[n, P]`` of one architecture
  (a key of ``manifest.architectures``) through the method's autoencoder and returns the
  decoded ``[n, P]`` (an identity returns ``weights``).

Optionally ``setup(*, zoo, manifest, seed, workdir) -> None`` is called once per seed before
any of the above (e.g. to train a SANE model on the zoo's train split into ``workdir``), and
``check_applicable(*, task, zoo) -> None`` before a task runs: it raises
:class:`~benchmarks.errors.TaskNotApplicableError` for a task the method cannot serve on these
rows (``zoo.splits``, ``zoo.column(split, name)``, ``zoo.manifest``), which a suite run then
skips (e.g. the NFNs, one network per architecture, on leave-one-architecture-out tasks).

A user method needs no change to this package: ``bench run --method mypkg.mod:MyMethod``
imports ``mypkg.mod`` and takes ``MyMethod`` (an instance, or a class / zero-argument factory
that is called). Example::

    class MeanWeight:
        name = "mean-weight"
        def meta(self): return {"version": 1}
        def features(self, dataset, manifest):
            return modelzoo.weights_tensor(dataset).mean(1, keepdim=True).numpy()
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import datasets
import numpy as np

from benchmarks.errors import MethodError
from modelzoo.storage.manifest import Manifest

#: Models drawn per kept sample by sampling methods that select on validation images
#: (SANE_SUB as published: 50 drawn, the best 10 kept): ``sane`` and ``weights-kde-sub``.
SELECTION_CANDIDATES = 5

Capability = Literal["features", "predict", "sample", "reconstruct"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class TargetModel:
    """The model an initialization / generation task builds from sampled weights.

    Attributes:
        architecture: key in ``manifest.architectures`` (the zoo's ``architecture`` column).
        activation: activation the weights are for.
        num_params: length of each weight vector.
    """

    architecture: str
    activation: str
    num_params: int


@runtime_checkable
class Method(Protocol):
    """Every method: a name and its metadata."""

    name: str

    def meta(self) -> dict[str, Any]:
        """JSON-serialisable description stored with each result."""
        ...


@runtime_checkable
class FeatureMethod(Method, Protocol):
    """A method that maps zoo rows to feature vectors."""

    def features(self, dataset: datasets.Dataset, manifest: Manifest) -> np.ndarray:
        """``[rows, d]`` features of ``dataset``."""
        ...


@runtime_checkable
class PredictorMethod(Method, Protocol):
    """A method with its own fit / predict."""

    def fit(
        self,
        train: datasets.Dataset,
        *,
        target: str,
        task_type: str,
        validation: datasets.Dataset,
        manifest: Manifest,
        seed: int,
    ) -> None:
        """Fit on ``train`` to predict column ``target``."""
        ...

    def predict(self, dataset: datasets.Dataset, *, manifest: Manifest) -> np.ndarray:
        """One prediction per row of ``dataset``."""
        ...


@runtime_checkable
class WeightGenerator(Method, Protocol):
    """A method that provides weight vectors (initialization / generation tasks)."""

    def sample(
        self, *, zoo: Path, manifest: Manifest, target: TargetModel, n: int, seed: int
    ) -> np.ndarray:
        """``[n, P]`` float32 weight vectors."""
        ...


@runtime_checkable
class Reconstructor(Method, Protocol):
    """A method with an autoencoder (reconstruction tasks)."""

    def reconstruct(
        self, *, zoo: Path, manifest: Manifest, architecture: str, weights: np.ndarray,
        seed: int,
    ) -> np.ndarray:
        """Decoded ``[n, P]`` float32 weights of the encoded ``weights`` ``[n, P]``."""
        ...


def capabilities(method: object) -> set[Capability]:
    """Which protocol parts ``method`` implements."""
    caps: set[Capability] = set()
    if callable(getattr(method, "features", None)):
        caps.add("features")
    if callable(getattr(method, "fit", None)) and callable(getattr(method, "predict", None)):
        caps.add("predict")
    if callable(getattr(method, "sample", None)):
        caps.add("sample")
    if callable(getattr(method, "reconstruct", None)):
        caps.add("reconstruct")
    return caps


def check_method_applicable(method: object, task: Any, zoo: Any) -> None:
    """Call the method's optional ``check_applicable(task=, zoo=)`` (see the module doc).

    Raises:
        TaskNotApplicableError: the method cannot serve ``task`` on ``zoo``'s rows.
    """
    check = getattr(method, "check_applicable", None)
    if callable(check):
        check(task=task, zoo=zoo)


def method_meta(method: object) -> dict[str, Any]:
    """``method.meta()`` plus its capabilities and head (checked to be a dict)."""
    meta = method.meta()  # type: ignore[attr-defined]
    if not isinstance(meta, dict):
        raise MethodError(f"method {method.name!r}: meta() must return a dict, not {type(meta)}")  # type: ignore[attr-defined]
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise MethodError(
            f"method {method.name!r}: meta() must be JSON-serialisable ({e})"  # type: ignore[attr-defined]
        ) from None
    out = dict(meta)
    out.setdefault("capabilities", sorted(capabilities(method)))
    if "features" in capabilities(method):
        out.setdefault("head", head_of(method))
    return out


def head_of(method: object) -> str:
    """The head a feature method asks for (``linear`` by default)."""
    head = getattr(method, "head", "linear")
    if head not in ("linear", "gbt"):
        raise MethodError(f"method head must be 'linear' or 'gbt', not {head!r}")
    return head


def check_method(method: object) -> object:
    """Validate ``method`` against the protocol and return it.

    Raises:
        MethodError: a missing name / meta, a bad name, or no capability.
    """
    name = getattr(method, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise MethodError(
            f"{method!r} is not a method: it needs a `name` attribute of lower-case letters, "
            "digits and .-_ (see benchmarks/methods/base.py)"
        )
    if not callable(getattr(method, "meta", None)):
        raise MethodError(f"method {name!r} needs a meta() -> dict method")
    if not capabilities(method):
        raise MethodError(
            f"method {name!r} implements none of features(dataset, manifest), "
            "fit(...)/predict(...), sample(...), reconstruct(...): see "
            "benchmarks/methods/base.py"
        )
    return method


def load_method(spec: str | object) -> Any:
    """Resolve a method: a registered name, ``"module:object"``, or a method object.

    ``module:object`` imports ``module`` (it must be importable, e.g. on ``sys.path`` or
    ``PYTHONPATH``) and takes ``object`` (dotted attributes allowed); a class or other
    callable without a ``name`` is called with no arguments.

    Raises:
        MethodError: cannot import, no such attribute, or not a method.
        UnknownNameError: an unknown registered name (with suggestions).
    """
    if not isinstance(spec, str):
        return check_method(spec)
    if ":" not in spec:
        from benchmarks.registry import METHODS

        return check_method(METHODS.get(spec)())
    mod_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise MethodError(
            f"cannot import module {mod_name!r} for method {spec!r}: {e} "
            "(is it on PYTHONPATH / installed?)"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise MethodError(f"module {mod_name!r} has no attribute {attr!r}") from None
    if callable(obj) and not isinstance(getattr(obj, "name", None), str):
        obj = obj()
    elif isinstance(obj, type):
        obj = obj()
    return check_method(obj)
