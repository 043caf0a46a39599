"""The all-reduce that the ranks of a distributed fit run among themselves.

Recursive halving then recursive doubling (Rabenseifner's algorithm; Thakur,
Rabenseifner and Gropp, "Optimization of collective communication operations
in MPICH", 2005): with ``p`` the largest power of two not above the number of
ranks ``N``, each rank exchanges half of its current span with a partner
``log2 p`` times (reduce-scatter: it ends holding the sum of one ``1/p`` of
the buffer), then the same exchanges in reverse hand the sums back
(all-gather). Each rank sends ``2 (p-1)/p`` of the buffer in ``2 log2 p``
messages: the bytes of a ring all-reduce in ``2 log2 p`` hops instead of
``2 (N-1)``. The ``N - p`` other ranks first fold their buffer into a
partner and get the result back at the end (two more hops). With ``p = 2``
the two halves travel as one message each way instead (the same bytes in one
hop; ``a + b`` and ``b + a`` are the same float).

Every element's sum is made by one rank, in an order fixed by ``N`` alone, and
copied to the others: all ranks end with the same bits, and the same ``N``
gives the same bits on every run, wherever the ranks are placed.

The schedule is plain data (:func:`schedule`); :func:`allreduce` runs one
with the transport it is given, so the algorithm is tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

import numpy as np

__all__ = ["Exchange", "allreduce", "hops", "schedule", "sent_fraction"]


class Exchange(NamedTuple):
    """One message out and/or one in: ``buffer[send]`` goes to ``partner``;
    what comes back from it under ``tag`` is added into ``buffer[receive]``
    (``add``) or copied there."""

    tag: str
    partner: int
    send: slice | None
    receive: slice | None
    add: bool


def _power(size: int) -> int:
    return 1 << (size.bit_length() - 1)


def schedule(rank: int, size: int, length: int) -> list[Exchange]:
    """The exchanges rank ``rank`` of ``size`` makes to all-reduce a buffer of
    ``length`` elements, in order.

    Examples
    --------
    >>> [(e.tag, e.partner) for e in schedule(0, 5, 10)]
    [('fold', 4), ('rs2', 2), ('rs1', 1), ('ag1', 1), ('ag2', 2), ('unfold', 4)]
    """
    p = _power(size)
    extra = size - p
    whole = slice(0, length)
    if rank >= p:
        return [Exchange("fold", rank - p, whole, None, False), Exchange("unfold", rank - p, None, whole, False)]
    out = []
    if rank < extra:
        out.append(Exchange("fold", rank + p, None, whole, True))
    if p == 2:
        out.append(Exchange("pair", rank ^ 1, whole, whole, True))
    lo, hi = 0, length
    levels = []
    mask = p >> 1 if p > 2 else 0
    while mask:
        # Partners differ only in this bit, so they split the same span.
        mid = lo + (hi - lo) // 2
        low = not rank & mask
        keep, give = (slice(lo, mid), slice(mid, hi)) if low else (slice(mid, hi), slice(lo, mid))
        out.append(Exchange(f"rs{mask}", rank ^ mask, give, keep, True))
        levels.append((mask, keep, give))
        lo, hi = keep.start, keep.stop
        mask >>= 1
    for mask, keep, give in reversed(levels):
        out.append(Exchange(f"ag{mask}", rank ^ mask, keep, give, False))
    if rank < extra:
        out.append(Exchange("unfold", rank + p, whole, None, False))
    return out


def hops(size: int) -> int:
    """Messages on the longest path of one all-reduce among ``size`` ranks."""
    p = _power(size)
    return (1 if p == 2 else 2 * (p.bit_length() - 1)) + (2 if size > p else 0)


def sent_fraction(size: int) -> float:
    """Buffers' worth of bytes on that path: ``2 (p-1)/p``, plus 2 when ``size``
    is not a power of two (the fold and the unfold)."""
    p = _power(size)
    return 2 * (p - 1) / p + (2.0 if size > p else 0.0)


async def allreduce(
    buffer: np.ndarray,
    exchanges: list[Exchange],
    send: Callable[[int, str, np.ndarray, bool], None],
    receive: Callable[[str], Awaitable[tuple[np.ndarray, bool]]],
    ok: bool = True,
) -> bool:
    """Sum ``buffer`` in place over the ranks; returns whether every rank was ``ok``.

    ``send(partner, tag, array, ok)`` must not block and must not keep a view
    of ``array`` that it reads later (the buffer changes); ``receive(tag)``
    returns the ``(array, ok)`` the partner sent under ``tag``. A rank that is
    not ``ok`` (its share failed) still sends, so no partner waits for ever,
    and its flag reaches every rank.
    """
    for exchange in exchanges:
        if exchange.send is not None:
            send(exchange.partner, exchange.tag, buffer[exchange.send], ok)
        if exchange.receive is not None:
            data, their_ok = await receive(exchange.tag)
            ok = ok and their_ok
            if exchange.add:
                buffer[exchange.receive] += data
            else:
                buffer[exchange.receive] = data
    return ok
