"""scikit-learn estimators: :class:`GraphNetClassifier` and :class:`GraphNetRegressor`.

They let a graphnet network sit in a ``Pipeline``, a ``GridSearchCV`` or a
``cross_val_score`` on scikit-learn's terms: parameters named as in
``MLPClassifier``/``MLPRegressor`` where the concept is the same, validation
through ``sklearn.utils.validation``, and every check of
``sklearn.utils.estimator_checks`` passing.

By default the network is the multilayer perceptron ``hidden_layer_sizes``
describes, started and trained the way ``MLPClassifier`` does it (same
initial weights for the same ``random_state``, same batches, same loss
scale, same L2 penalty, same stopping rule). The ``graph`` parameter puts
any graphnet DAG in its place:

* a callable ``graph(n_features, n_outputs) -> Graph``, called at each
  (non-incremental) ``fit``;
* a spec dict as :meth:`graphnet.Graph.from_dict` reads it;
* a :class:`~graphnet.Graph`, used as the starting point.

The estimator trains a private copy (``graph_``); what was passed is never
changed. scikit-learn hands an estimator one 2-D ``X``, so a graph with
several inputs receives the columns of ``X`` split in the inputs' insertion
order (the first input takes the first ``size`` columns, and so on);
likewise the regressor splits the columns of ``y`` over several outputs.

Training runs on the engine's own epoch loop (:meth:`graphnet.trainer.Trainer.run`);
what is MLPClassifier's own (its initial weights, its L2 penalty, its
stopping rule and bookkeeping) is a draw, a penalty and a callback on that
loop, in ``_mlp.py``.
"""

from __future__ import annotations

try:
    import sklearn  # noqa: F401  (scikit-learn >= 1.6: validate_data, __sklearn_tags__)
    from sklearn.utils.validation import validate_data  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "graphnet.sklearn needs scikit-learn >= 1.6; install it with "
        "pip install 'graphnet[sklearn]'"
    ) from exc

from ._classifier import GraphNetClassifier
from ._regressor import GraphNetRegressor

__all__ = ["GraphNetClassifier", "GraphNetRegressor"]
