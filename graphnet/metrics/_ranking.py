"""The area under the ROC curve, exact (every score kept) or from a histogram."""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ..errors import GraphError
from ._metric import Metric, as_rows, binary_truth, class_labels, row_weights

__all__ = ["AUC", "area_under_roc"]


def area_under_roc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """The ROC AUC from the weighted counts of positives and negatives at
    each distinct score, in increasing score order: the chance that a
    positive outscores a negative, ties counting half (the trapezoid rule
    on the ROC curve, scikit-learn's ``roc_auc_score``). NaN when one class
    is missing."""
    total_pos, total_neg = positives.sum(), negatives.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    above = total_pos - np.cumsum(positives)  # positives scored strictly higher
    return float((negatives * (above + 0.5 * positives)).sum() / (total_pos * total_neg))


#: The most bins ``AUC(num_thresholds=...)`` takes: 160 MB of histograms a unit.
MAX_THRESHOLDS = 10_000_000


class AUC(Metric):
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``).

    On a sigmoid output of one unit, the binary AUC; on several units the
    mean over units (multilabel, ``average="macro"``); on a softmax output
    the mean over classes of one-vs-rest AUCs (``multi_class="ovr"``).
    Units or classes with no positive or no negative row are left out of
    the mean (scikit-learn refuses them); none left gives NaN.

    Parameters
    ----------
    num_thresholds : int, optional
        None (the default): exact, as scikit-learn computes it; every score
        is kept until :meth:`result`, ``(2 x units + 1) x 8`` bytes a row,
        up to ``max_rows`` rows. An integer: a histogram of that many equal
        bins on ``[0, 1]`` per unit (Keras's ``AUC(num_thresholds=...)``),
        fixed memory, exactly the AUC of the scores rounded down to their
        bin; at most ``MAX_THRESHOLDS`` (10,000,000).
    max_rows : int
        The most rows the exact AUC keeps (a :class:`~graphnet.GraphError`
        beyond them).
    name : str, optional
        The key in the logs (``"auc"`` by default), to log two AUCs side by side.
    """

    reads_labels = True
    zero_one_targets = True

    name = "auc"
    activations = ("softmax", "sigmoid")

    def __init__(self, num_thresholds: int | None = None, max_rows: int = 10_000_000, name: str | None = None):
        super().__init__(name)
        self.num_thresholds = None if num_thresholds is None else check_int(
            num_thresholds, "AUC: num_thresholds", low=2)
        if self.num_thresholds is not None and self.num_thresholds > MAX_THRESHOLDS:
            raise GraphError(f"AUC: num_thresholds must be at most {MAX_THRESHOLDS:,} (each unit keeps two "
                             f"histograms of that many bins), got {self.num_thresholds:,}")
        self.max_rows = check_int(max_rows, "AUC: max_rows")
        self.live = self.num_thresholds is not None  # the exact AUC sorts every score it kept
        if self.num_thresholds is None:
            self.add_state("scores", [], merge="concat")
            self.add_state("truths", [], merge="concat")
            self.add_state("weights", [], merge="concat")
            self.add_state("rows", 0)
        else:
            self.add_state("positives", 0.0)
            self.add_state("negatives", 0.0)

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = np.array(as_rows(y_pred), dtype=np.float64)  # a copy: y_pred may be a reused buffer
        n, units = scores.shape
        weights = row_weights(sample_weight, n)
        weights = np.ones(n) if weights is None else weights
        if self.kind(scores) == "categorical":
            truth = np.zeros((n, units), bool)
            truth[np.arange(n), class_labels(np.asarray(y_true), units)] = True
        else:
            truth = binary_truth(self, np.asarray(y_true))
        if self.num_thresholds is None:
            if self.rows + n > self.max_rows:
                raise GraphError(
                    f"metric {self.name!r}: the exact AUC keeps every score, and {self.rows + n} rows exceed "
                    f"max_rows={self.max_rows}; pass gn.metrics.AUC(num_thresholds=200) for a fixed-size "
                    "histogram, or a larger max_rows"
                )
            self.scores.append(scores)
            self.truths.append(truth)
            self.weights.append(weights)
            self.rows += n
            return
        bins = self.num_thresholds
        index = np.clip((scores * bins).astype(np.int64), 0, bins - 1) + bins * np.arange(units)
        w = np.broadcast_to(weights[:, None], truth.shape)
        self.positives = self.positives + np.bincount(index[truth], w[truth], units * bins).reshape(units, bins)
        self.negatives = self.negatives + np.bincount(index[~truth], w[~truth], units * bins).reshape(units, bins)

    def result(self) -> float:
        if self.num_thresholds is not None:
            if isinstance(self.positives, float):
                return float("nan")
            areas = [area_under_roc(p, q) for p, q in zip(self.positives, self.negatives)]
        else:
            if not self.scores:
                return float("nan")
            scores, truths = np.concatenate(self.scores), np.concatenate(self.truths)
            weights = np.concatenate(self.weights)
            areas = []
            for column in range(scores.shape[1]):
                distinct, where = np.unique(scores[:, column], return_inverse=True)
                truth = truths[:, column]
                areas.append(area_under_roc(np.bincount(where, weights * truth, len(distinct)),
                                            np.bincount(where, weights * ~truth, len(distinct))))
        defined = [a for a in areas if not np.isnan(a)]
        return float(np.mean(defined)) if defined else float("nan")

    def get_config(self):
        return {"name": self.name, "num_thresholds": self.num_thresholds, "max_rows": self.max_rows}
