"""Callbacks: hooks into ``fit``.

* :class:`Callback` (the base class) and :class:`History` (what ``fit`` returns);
* steering: :class:`EarlyStopping`, :class:`ReduceLROnPlateau`,
  :class:`TerminateOnNaN`, :class:`LearningRateScheduler`, :class:`LambdaCallback`;
* files: :class:`ModelCheckpoint`, :class:`BackupAndRestore`;
* records: :class:`CSVLogger`, :class:`TensorBoard`, :class:`StatsRecorder`.

A callback sees the graph as :attr:`Callback.graph`, ``fit``'s settings as
:attr:`Callback.params` (``epochs``, ``steps``, ``batch_size``, ``rows`` and
``metrics``, the names each epoch's logs will hold), and the epoch's logs
(``loss``, ``val_loss``, ``accuracy``, ...). Callbacks that name a logged
value check it against ``params["metrics"]`` when training begins, so a typo
fails before the first epoch trains, not after it (a name that a callback of
the user's earlier in the list may add is looked for when the epoch ends). Epochs are counted from 0
here, as in Keras; messages and progress bars count from 1.
"""

from ._base import Callback, History, check_hooks, wants  # noqa: F401 (check_hooks, wants: for fit, not callbacks)
from ._checkpoints import BackupAndRestore, ModelCheckpoint
from ._fit import ask_callbacks, release  # noqa: F401 (for fit, not callbacks)
from ._control import EarlyStopping, LambdaCallback, LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN
from ._logging import CSVLogger, StatsRecorder, TensorBoard

__all__ = [
    "Callback",
    "History",
    "EarlyStopping",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "LearningRateScheduler",
    "LambdaCallback",
    "ModelCheckpoint",
    "BackupAndRestore",
    "CSVLogger",
    "TensorBoard",
    "StatsRecorder",
]
