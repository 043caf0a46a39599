"""Import fitted scikit-learn perceptrons: ``gn.from_sklearn(estimator)``.

``MLPClassifier`` and ``MLPRegressor`` keep their weights as ``coefs_``
(``(in, out)``, graphnet's layout) and ``intercepts_``; hidden layers share
one ``activation`` (``identity``, ``logistic``, ``tanh``, ``relu``) and the
output's is ``out_activation_``:

* ``softmax`` (a classifier of three or more classes): a softmax output,
  ``predict`` equal to ``predict_proba``;
* ``logistic`` with one unit (a binary classifier): ``predict_proba``
  returns ``[1 - p, p]``, and a two-unit softmax over ``[0, z]`` is exactly
  that, so the output has two units, the first with zero weights;
* ``logistic`` with several units (multilabel): a sigmoid output;
* ``identity`` (a regressor): a linear output; ``predict`` has shape
  ``(n, outputs)`` where scikit-learn flattens a single output to ``(n,)``.

The graph is a :class:`~graphnet.Sequential` (``input``, ``dense``,
``dense_1``, ...), float64 when the estimator's weights are. Only the fitted
arrays are read: scikit-learn itself is not imported.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelImportError
from ._arguments import check_arguments
from ._builder import Builder
from ._guards import out_of_memory

__all__ = ["ACTIVATIONS", "from_sklearn"]

#: scikit-learn activation names -> graphnet's.
ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "softmax": "softmax"}


def from_sklearn(estimator, *, loss=None, name: str | None = None, seed: int | None = None):
    """A Sequential predicting as a fitted ``MLPClassifier`` or ``MLPRegressor``.

    Parameters
    ----------
    estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
        Fitted.
    loss : str, dict or Loss, optional
        By default the one the output's activation implies (softmax:
        ``categorical_crossentropy``, sigmoid: ``binary_crossentropy``,
        linear: ``mse``).
    name : str, optional
        Of the graph; by default the estimator's class name in lower case.
    seed : int, optional

    Returns
    -------
    Sequential

    Raises
    ------
    ModelImportError
        For an estimator of another type, one not fitted, or an activation
        graphnet does not have; naming the argument for a wrong ``loss``,
        ``name`` or ``seed``.
    """
    check_arguments("from_sklearn", loss=loss, name=name, seed=seed)
    kind = type(estimator).__name__
    if kind not in ("MLPClassifier", "MLPRegressor") or not type(estimator).__module__.startswith("sklearn."):
        raise ModelImportError(
            f"from_sklearn expects a fitted sklearn.neural_network.MLPClassifier or MLPRegressor, got "
            f"{type(estimator).__module__}.{type(estimator).__qualname__}"
        )
    source = f"scikit-learn {kind}"
    coefs, intercepts = getattr(estimator, "coefs_", None), getattr(estimator, "intercepts_", None)
    if coefs is None or intercepts is None:
        raise ModelImportError(f"{source} is not fitted; call fit(X, y) first")
    hidden = ACTIVATIONS.get(getattr(estimator, "activation", None))
    out = ACTIVATIONS.get(getattr(estimator, "out_activation_", None))
    for what, value, found in (("activation", estimator.activation, hidden),
                               ("out_activation_", estimator.out_activation_, out)):
        if found is None:
            raise ModelImportError(f"{source}: {what}={value!r} has no graphnet equivalent; "
                                   f"supported: {sorted(ACTIVATIONS)}")
    with out_of_memory(source):
        coefs = [np.asarray(c) for c in coefs]
        intercepts = [np.asarray(b) for b in intercepts]
        if len(coefs) != len(intercepts) or not coefs or any(c.ndim != 2 for c in coefs):
            raise ModelImportError(f"{source}: coefs_ and intercepts_ do not describe a network")
        dtype = "float64" if all(c.dtype == np.float64 for c in coefs) else "float32"

        builder = Builder(source)
        current = builder.add_input("input", coefs[0].shape[0], "input")
        for i, (weight, bias) in enumerate(zip(coefs, intercepts)):
            last = i == len(coefs) - 1
            activation = out if last else hidden
            if last and out == "sigmoid" and weight.shape[1] == 1 and kind == "MLPClassifier":
                # predict_proba = [1 - p, p] = softmax([0, z]) exactly.
                weight = np.hstack([np.zeros_like(weight), weight])
                bias = np.concatenate([np.zeros_like(bias), bias])
                activation = "softmax"
            node = "dense" if i == 0 else f"dense_{i}"
            current = builder.add_dense(node, [(current, weight.astype(np.float64))], weight.shape[1],
                                        bias.astype(np.float64), activation=activation,
                                        origin=f"layer {i + 1} of {len(coefs)}")
        return builder.build([current], loss=loss, dtype=dtype, name=name or kind.lower(),
                             sequential=True, seed=seed)
