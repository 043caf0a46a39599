"""What ``fit`` asks of its callbacks before it trains, and what it gives
them when it fails: :func:`ask_callbacks` and :func:`release`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import GraphError
from ._base import ADDERS, adds_to_logs

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = ["ask_callbacks", "release"]

logger = logging.getLogger("graphnet.training")


def ask_callbacks(graph: Graph, callbacks, params: dict, optimizer) -> None:
    """Each callback's own checks, before a fit changes anything: it meets
    the graph and the fit's ``params`` (monitored names, files, ...), then
    the optimizer the fit will train with (:meth:`Callback.check_optimizer`)."""
    logging_rate = [type(cb).__name__ for cb in callbacks if cb.logs_learning_rate]
    if logging_rate:
        if "learning_rate" in params["metrics"]:
            raise GraphError(f"fit: a metric is logged as 'learning_rate', the name {logging_rate[0]} logs the "
                             "learning rate under; rename the metric (Metric(name=...))")
        params["metrics"] = [*params["metrics"], "learning_rate"]  # a name the logs will hold
    adders: list[str] = []  # the user's callbacks met so far that may add names to the logs
    for cb in callbacks:
        cb.set_graph(graph)
        token = ADDERS.set(tuple(adders))
        try:
            cb.set_params(params)
        finally:
            ADDERS.reset(token)
        cb.check_optimizer(optimizer)
        if adds_to_logs(cb):
            adders.append(type(cb).__name__)


def release(callbacks) -> None:
    """Each callback's ``close()`` after a fit that failed (refused before
    training, or stopped by an error or Ctrl-C), every one of them, a failure
    of their own logged: the fit's error is the one to raise."""
    for cb in callbacks:
        try:
            cb.close()
        except BaseException:  # noqa: BLE001 - the fit's own error goes on
            logger.warning("%s: close() failed after the fit failed", type(cb).__name__, exc_info=True)
