"""The estimators' hyperparameters: MLPClassifier's, and graphnet's ``optimizer``
and ``graph``, checked at ``fit`` as scikit-learn checks them."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from .. import activations
from .. import optimizers as optimizers_module
from .._settings import naming_the_class
from .._text import shown, suggestion
from .._validation import check_bool, check_int, is_int
from ..graph import Graph

__all__ = ["Parameters"]

#: MLPClassifier's activation names, mapped to graphnet's.
_ACTIVATION_ALIASES = {"identity": "linear", "logistic": "sigmoid"}


class Parameters(BaseEstimator):
    """The estimators' parameters (documented by :class:`GraphNetClassifier`),
    and their checks."""

    # A misspelt parameter is scikit-learn's TypeError, naming the estimator and the closest name.
    @functools.partial(naming_the_class, error=TypeError)
    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        alpha=1e-4,
        batch_size="auto",
        learning_rate_init=1e-3,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        optimizer="adam",
        graph=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.optimizer = optimizer
        self.graph = graph

    def _check_params(self) -> None:
        """Refuse bad hyperparameters at ``fit`` (scikit-learn's rule: never in
        ``__init__`` or ``set_params``), naming the parameter and the value."""
        _check_number("alpha", self.alpha, low=0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _check_int("batch_size", self.batch_size, "'auto' or a positive integer")
        _check_number("learning_rate_init", self.learning_rate_init, low=0.0, strict=True)
        _check_int("max_iter", self.max_iter)
        _check_number("tol", self.tol, low=0.0)
        for name in ("shuffle", "warm_start", "early_stopping"):
            check_bool(getattr(self, name), name)
        if not (isinstance(self.verbose, (numbers.Integral, np.bool_)) and self.verbose >= 0):  # bool: Integral
            raise ValueError(f"verbose must be a bool or an integer >= 0, got {type(self.verbose).__name__}: "
                             f"{self.verbose!r}")
        try:
            check_random_state(self.random_state)
        except ValueError:
            raise ValueError("random_state must be None, an integer in [0, 2**32 - 1] or a numpy RandomState, got "
                             f"{type(self.random_state).__name__}: {self.random_state!r}") from None
        _check_number("validation_fraction", self.validation_fraction, low=0.0, strict=True)
        if self.validation_fraction >= 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        if not (isinstance(self.n_iter_no_change, numbers.Real) and self.n_iter_no_change == np.inf):
            _check_int("n_iter_no_change", self.n_iter_no_change, "a positive integer or np.inf")
        if self.graph is None:
            self._hidden_sizes()
            self._hidden_activation()
        elif not (callable(self.graph) or isinstance(self.graph, (Mapping, Graph))):
            raise ValueError(
                "graph must be None (a perceptron from hidden_layer_sizes), a callable "
                "(n_features, n_outputs) -> Graph, a spec dict or a Graph; got "
                f"{type(self.graph).__name__}: {self.graph!r}"
            )
        self._new_optimizer()  # refuses unknown names and bad settings early

    def _hidden_sizes(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else sizes
        try:
            sizes = tuple(sizes)
        except TypeError:
            sizes = None
        if sizes is None or not all(
            is_int(s, 1) for s in sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must be a positive integer or a sequence of them, "
                f"got {self.hidden_layer_sizes!r}"
            )
        return tuple(int(s) for s in sizes)

    def _hidden_activation(self):
        name = self.activation
        if isinstance(name, str):
            name = _ACTIVATION_ALIASES.get(name, name)
            if name not in activations.ACTIVATIONS:  # the estimator's own hint: it reads no file
                known = sorted([*activations.ACTIVATIONS, *_ACTIVATION_ALIASES])
                raise ValueError(f"activation: unknown activation {shown(name)}; known: {known} (a custom "
                                 f"activation's class is made known with gn.register(cls)){suggestion(name, known)}")
        try:
            return activations.get(name)
        except ValueError as exc:
            raise ValueError(
                f"activation: {exc} (MLPClassifier's 'identity' and 'logistic' also work)"
            ) from None

    def _new_optimizer(self) -> optimizers_module.Optimizer:
        """A fresh optimizer from the ``optimizer`` parameter (which is never
        itself trained with, so the parameter stays as the user set it).

        A name or a dict without ``lr`` gets ``learning_rate_init``; an
        Optimizer instance or a dict with ``lr`` keeps its own rate.
        """
        spec = self.optimizer
        if isinstance(spec, optimizers_module.Optimizer):
            config = {k: v for k, v in spec.get_config().items() if k != "name"}
            return type(spec)(**config)
        if isinstance(spec, str):
            return optimizers_module.get({"name": spec, "lr": self.learning_rate_init})
        if isinstance(spec, Mapping):  # its own rate, under either name, or learning_rate_init
            given = "lr" in spec or "learning_rate" in spec
            return optimizers_module.get({**({} if given else {"lr": self.learning_rate_init}), **spec})
        raise ValueError(
            "optimizer must be a name (e.g. 'adam'), a config dict or a "
            f"graphnet.optimizers.Optimizer; got {type(spec).__name__}: {spec!r}"
        )


def _check_number(name: str, value, low: float, strict: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        bound = f"> {low}" if strict else f">= {low}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_int(name: str, value, expected: str = "a positive integer") -> None:
    check_int(value, name, expected=expected)
