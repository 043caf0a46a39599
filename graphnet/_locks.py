"""A read/write lock: many readers at once, or one writer.

A graph holds one. ``predict`` and ``evaluate`` read (several threads may
predict at once, and each sees the weights of one moment: no training step
lands in the middle of a call); a training step and every edit write. A
short ``predict`` reads without the lock and checks afterwards that no
write came in the middle (:func:`read_optimistically`).

- A waiting writer goes before new readers, so a stream of predictions
  cannot starve training.
- Readers waiting when a writer lets go go before it writes again, so
  training (a write per step) cannot starve a prediction or a ``save``.
- Writers go in the order they came, so an edit made in a loop cannot
  starve training either.
- A reading thread may read again (``save`` reads the weights while it
  holds the read lock), and the writing thread may take the lock again (an
  edit inside an edit) and may read while it writes.

A process forked while other threads read or write (``multiprocessing``'s
default start on Linux) copies the lock as they held it, but not the
threads, which would never let go: in the child, every lock keeps only
what the forking thread held, and the plain locks named with
:func:`renew_in_forked_child` start unlocked.
"""

from __future__ import annotations

import collections
import functools
import os
import threading
import weakref

__all__ = ["ReadWriteLock", "edit", "read", "read_optimistically", "renew_in_forked_child"]


class ReadWriteLock:
    """See the module docs. Use ``with lock.reading():`` / ``with lock.writing():``."""

    __slots__ = ("_mutex", "_cond", "_readers", "_writer", "_depth", "_waiting", "_sleepers",
                 "_read_waiting", "_readers_turn", "_reading", "_writing", "writes", "__weakref__")

    _waiting: collections.deque[int]  # writers waiting, in the order they came

    _readers: dict[int, int]  # reading thread -> how many times it holds the read lock

    def __init__(self):
        # The mutex is taken with ``with`` (C code, no Python frames: a
        # training step takes and gives back the write lock once), and
        # sleepers are woken only when there are some.
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = {}
        self._writer: int | None = None
        self._depth = 0
        self._waiting = collections.deque()  # writers waiting: new readers let them go first
        self._sleepers = 0  # threads in _cond.wait()
        self._read_waiting = 0  # readers waiting
        self._readers_turn = False  # a writer let go while readers waited: they go first
        self._reading = _Held(self.acquire_read, self.release_read)
        self._writing = _Held(self.acquire_write, self.release_write)
        #: Odd while a writer holds the lock; one more each time one takes or
        #: lets go of it (what :func:`read_optimistically` compares).
        self.writes = 0
        _LOCKS.add(self)

    def _forked(self) -> None:
        """In a forked child: keep what the forking thread (the only one
        there) held, and forget the threads left behind in the parent."""
        me = threading.get_ident()
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = {me: self._readers[me]} if me in self._readers else {}
        if self._writer is not None and self._writer != me:
            self._writer, self._depth = None, 0
            self.writes += 1  # even again: no writer
        self._waiting = collections.deque()
        self._sleepers = self._read_waiting = 0
        self._readers_turn = False

    def reading(self) -> _Held:
        return self._reading

    def writing(self) -> _Held:
        return self._writing

    @property
    def busy(self) -> bool:
        """Whether anyone reads or writes now (for messages and tests)."""
        return bool(self._readers) or self._writer is not None

    def _sleep(self) -> None:
        self._sleepers += 1
        try:
            self._cond.wait()
        finally:
            self._sleepers -= 1

    def _wake(self) -> None:
        if self._sleepers:
            self._cond.notify_all()

    def acquire_read(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._writer == me:  # the writer may read what it writes
                self._depth += 1
                return
            if me in self._readers:  # a reader may read again, even with a writer waiting
                self._readers[me] += 1
                return
            if self._writer is None and not self._waiting:  # nobody writes or waits to: in at once
                self._readers[me] = 1
                return
            self._read_waiting += 1
            try:
                while self._writer is not None or (self._waiting and not self._readers_turn):
                    self._sleep()
            finally:
                self._read_waiting -= 1
                if not self._read_waiting and self._readers_turn:
                    self._readers_turn = False  # every reader that waited is in: writers again
                    self._wake()
            self._readers[me] = 1

    def release_read(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._writer == me:
                self._depth -= 1
                return
            if self._readers[me] > 1:
                self._readers[me] -= 1
                return
            del self._readers[me]
            if not self._readers:
                self._wake()

    def acquire_write(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._writer == me:
                self._depth += 1
                return
            waiting = self._waiting
            if self._readers or self._writer is not None or self._readers_turn or waiting:
                # Writers go in the order they came: one that lets go and asks
                # again at once goes after those already waiting.
                waiting.append(me)
                try:
                    while self._readers or self._writer is not None or self._readers_turn or waiting[0] != me:
                        self._sleep()
                except BaseException:  # interrupted while waiting: out of the line, the next may go
                    waiting.remove(me)
                    self._wake()
                    raise
                waiting.popleft()
            self._writer, self._depth = me, 1
            self.writes += 1

    def release_write(self) -> None:
        with self._mutex:
            self._depth -= 1
            if not self._depth:
                self._writer = None
                self.writes += 1
                self._readers_turn = self._read_waiting > 0
                self._wake()


_LOCKS: weakref.WeakSet[ReadWriteLock] = weakref.WeakSet()
_PLAIN: weakref.WeakKeyDictionary[object, tuple[str, ...]] = weakref.WeakKeyDictionary()


def renew_in_forked_child(owner, *names: str) -> None:
    """Give ``owner`` a fresh ``threading.Lock`` under each of ``names`` in a
    forked child (each is held only for a moment, never across a call that
    could fork)."""
    _PLAIN[owner] = names


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._forked()
    for owner, names in list(_PLAIN.items()):
        for name in names:
            setattr(owner, name, threading.Lock())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Held:
    """A reusable context manager around an acquire/release pair (cheaper
    than a generator-based one on the training loop's hot path)."""

    __slots__ = ("_acquire", "_release")

    def __init__(self, acquire, release):
        self._acquire = acquire
        self._release = release

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(self, *exc) -> None:
        self._release()


def read_optimistically(lock: ReadWriteLock, function, *args):
    """``function(*args)`` as if under ``lock.reading()``, without taking it
    when no writer comes: a short read (a one-row ``predict``) then costs
    two attribute reads instead of the lock's Python frames.

    The call runs with no lock when no writer holds it, and counts as read
    under the lock when no writer took it before the call ended (``writes``
    unchanged): no write landed in the middle, so what it read is of one
    moment. Otherwise its result (or its error, which a write in the
    middle may have caused) is dropped and the call runs again under the
    read lock. ``function`` must change nothing shared but what a retry
    overwrites (its own results, a thread's scratch).
    """
    seen = lock.writes
    if not seen & 1:
        try:
            result = function(*args)
        except Exception:
            if lock.writes == seen:
                raise
        else:
            if lock.writes == seen:
                return result
    with lock.reading():
        return function(*args)


def edit(method):
    """Run an editing method or function under its graph's write lock (the
    ``lock`` of its first argument): it waits for running predictions and
    training steps, and they wait for it."""

    @functools.wraps(method)
    def locked(graph, *args, **kwargs):
        with graph.lock.writing():
            return method(graph, *args, **kwargs)

    return locked


def read(function):
    """Run a reading function under its graph's read lock (the ``lock`` of its
    first argument): it sees the weights and structure of one moment."""

    @functools.wraps(function)
    def locked(graph, *args, **kwargs):
        with graph.lock.reading():
            return function(graph, *args, **kwargs)

    return locked
