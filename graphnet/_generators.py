"""Training data that comes in batches: an iterable or a generator of
``(x, y)`` or ``(x, y, sample_weight)`` tuples, for data that does not fit
in memory.

As in Keras, a source that can be iterated again (a list, a Sequence-like
object with ``__len__`` and ``__getitem__``, any iterable whose ``iter()``
gives a fresh iterator) is iterated afresh every epoch, at most
``steps`` batches of it; a one-shot iterator (a generator) is consumed
across epochs, ``steps`` batches each, so it needs ``steps`` to train more
than one epoch. Each batch is checked as ``fit`` checks arrays, and an error
names the epoch and the batch.

An epoch begins only when its data has a batch (:meth:`BatchSource.more`
takes each epoch's first batch before the epoch begins): a generator that
runs out ends training after its last batch's epoch, data that yields
nothing at all is refused before anything changes, and a batch taken by a
fit that then ends (an error, Ctrl-C) is kept for the next fit given the
same generator.
"""

from __future__ import annotations

import logging
import numbers
import sys
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

from ._data import as_inputs, as_targets, common_rows
from ._row_weights import as_weights
from ._text import shown
from .errors import GraphError, ShapeError

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["is_batch_source", "BatchSource"]

logger = logging.getLogger("graphnet.training")

#: What :meth:`BatchSource.more` found when a generator had no batch left.
_END = object()

#: The batch a fit took ahead from a generator and did not train on (see :meth:`BatchSource.give_back`).
_PENDING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def is_batch_source(data) -> bool:
    """Whether ``data`` yields batches (rather than being an array, a dict of
    arrays, a list of rows, or a ``(x, y)`` tuple of them)."""
    if isinstance(data, (np.ndarray, Mapping, str, bytes)) or hasattr(data, "__array__") or hasattr(data, "shape"):
        return False
    if isinstance(data, (tuple, list)):  # of batches (x, y), or of rows: a row's first item is a value
        return bool(data) and isinstance(data[0], (tuple, list)) and not (data[0] and _is_value(data[0][0]))
    return isinstance(data, Iterable) or (hasattr(type(data), "__getitem__") and hasattr(type(data), "__len__"))


def _is_value(item) -> bool:
    """Whether ``item`` is one value of a row (a number, a bool, text, None,
    pandas' NA, a 0-d array or tensor), not a batch's data."""
    if item is None or isinstance(item, (numbers.Number, str, bytes, np.generic)) or getattr(item, "ndim", None) == 0:
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and item is pandas.NA


class BatchSource:
    """The batches of one ``fit`` argument, checked, each ``(inputs, targets,
    rows, weights)`` as :class:`graphnet._data.Batches` gives them.

    Parameters
    ----------
    graph : Graph
    data : iterable, Sequence-like or iterator of batch tuples
    role : str
        ``"fit"`` or ``"validation_data"``, for messages.
    steps : int, optional
        Batches per epoch (``steps_per_epoch`` or ``validation_steps``).
    class_weight : dict, optional
        As for ``fit``, applied to each batch.
    epochs : int
        The epochs this fit will run (a one-shot iterator without ``steps``
        can feed only one).
    """

    def __init__(self, graph: Graph, data, role: str, steps: int | None, class_weight=None, epochs: int = 1):
        self.graph, self.role, self.steps, self.class_weight = graph, role, steps, class_weight
        self.indexable = hasattr(type(data), "__getitem__") and hasattr(type(data), "__len__")
        try:
            self.one_shot = not self.indexable and iter(data) is data
        except TypeError:
            raise GraphError(f"{role}: expected arrays or an iterable of (x, y) batches, got "
                             f"{type(data).__name__}") from None
        if self.one_shot and steps is None and epochs > 1:
            what = "steps_per_epoch" if role == "fit" else "validation_steps"
            raise GraphError(
                f"{role}: a generator (a one-shot iterator) is consumed across epochs, so {epochs} epochs "
                f"need {what}=... batches each; or pass an iterable that can be iterated again "
                "(a list, a Sequence with __len__ and __getitem__)"
            )
        self.data = data
        self._iterator: Iterator | None = data if self.one_shot else None
        self._ahead: list = []  # the batch :meth:`more` took, not yet trained on (or _END)
        self._fresh: Iterator | None = None  # the iterator :meth:`more` made of an iterable, for its epoch
        self.spent = False  # a one-shot iterator that has run out
        if self.one_shot:
            try:  # what an earlier fit took ahead from this generator and did not train on
                self._ahead = [_PENDING.pop(data)] if data in _PENDING else []
            except TypeError:
                pass

    @property
    def count(self) -> int | None:
        """Batches per epoch when known (``steps``, or the length of a Sequence)."""
        if self.steps is not None:
            return self.steps if not self.indexable else min(self.steps, len(self.data))
        return len(self.data) if self.indexable else None

    def more(self, epoch: int, first: bool) -> bool:
        """Whether epoch ``epoch`` has a batch to train on, asked before it
        begins: the epoch's first batch is taken now (from a generator, or
        a fresh iterator of an iterable) and trained on first. False, with
        a warning, when there is none: training then stops.

        Raises
        ------
        GraphError
            When the ``first`` epoch of a fit has no batch (a generator already
            used up, an empty Sequence): the fit would train nothing.
        """
        found_end = False
        if not self.indexable and not self._ahead and not (self.one_shot and self.spent):
            if not self.one_shot:
                self._fresh = iter(self.data)
            self._ahead = [next(self._iterator if self.one_shot else self._fresh, _END)]
            found_end = self._ahead[0] is _END
            self.spent = self.spent or (self.one_shot and found_end)
        empty = len(self.data) == 0 if self.indexable else not self._ahead or self._ahead[0] is _END
        if empty and first:
            purpose = "train on" if self.role == "fit" else "validate"
            raise GraphError(f"{self.role}: the data yielded no batches (a generator that was already used up, or "
                             f"an empty Sequence), so there is nothing to {purpose}")
        if found_end and not first:  # (one that ran out within an epoch said so then)
            logger.warning("%s: %s ran out of data before epoch %d; training stops", self.graph.name, self.role,
                           epoch + 1)
        return not empty

    def give_back(self) -> None:
        """A fit that ends before training the batch :meth:`more` took from a
        generator (an error, Ctrl-C, a backup that says every epoch ran)
        leaves it for the next fit given the same generator; a generator that
        cannot be weakly referenced loses it."""
        if self.one_shot and self._ahead and self._ahead[0] is not _END:
            try:
                _PENDING[self._iterator] = self._ahead.pop()
            except TypeError:
                logger.debug("%s: a batch taken ahead from %s is lost", self.graph.name, type(self._iterator))

    def _items(self) -> Iterator:
        """The epoch's batches, the one :meth:`more` took first."""
        rest = self._iterator if self.one_shot else self._fresh
        while self._ahead:
            item = self._ahead.pop()
            if item is _END:
                return
            yield item
        for item in rest:
            yield item
        self.spent = self.one_shot

    def epoch(self, epoch: int):
        """The next epoch's checked batches (fewer than ``steps`` when the data
        runs out, with a warning)."""
        if self.indexable:
            items = (self.data[i] for i in range(len(self.data)))
        else:
            items = self._items() if self.one_shot or self._ahead else iter(self.data)
        index = -1
        for index, item in enumerate(items):
            yield self.check(item, epoch, index)
            if self.steps is not None and index + 1 == self.steps:
                return
        if self.steps is not None:  # fewer batches than steps
            logger.warning("%s: %s ran out of data after %d of %d batches in epoch %d%s", self.graph.name,
                           self.role, index + 1, self.steps, epoch + 1,
                           "; training stops" if self.one_shot and self.role == "fit" else "")

    def check(self, item, epoch: int, index: int):
        """One batch as ``(inputs, targets, rows, weights)``, on the graph's device.

        Raises
        ------
        GraphError
            (Or ShapeError) naming the epoch and the batch, for a batch that is
            not a tuple or whose arrays do not fit the graph.
        """
        where = f"{self.role}: epoch {epoch + 1}, batch {index + 1}"
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise GraphError(f"{where}: expected a tuple (x, y) or (x, y, sample_weight), got "
                             f"{type(item).__name__}: {shown(item)}")
        graph = self.graph
        try:
            inputs, targets = as_inputs(graph, item[0]), as_targets(graph, item[1])
            rows = common_rows(inputs, targets)
            if rows == 0:
                raise ShapeError("the batch has no rows")
            weights = as_weights(graph, item[2] if len(item) == 3 else None, self.class_weight, targets, rows,
                                 whole=False, where=None)  # the batch is named below
        except GraphError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        backend = graph.backend
        if backend.deferred:
            send = backend.to_device
            inputs, targets = {k: send(v) for k, v in inputs.items()}, {k: send(v) for k, v in targets.items()}
            weights = None if weights is None else {k: send(v) for k, v in weights.items()}
        return inputs, targets, rows, weights
