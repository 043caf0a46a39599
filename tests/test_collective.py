"""The ranks' all-reduce (graphnet._collective), run among simulated ranks in
one event loop: every rank ends with the same bits, equal to the sum; the
message counts and bytes are what the cost model assumes."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from graphnet._collective import allreduce, hops, schedule, sent_fraction


def _run(buffers: list[np.ndarray], oks: list[bool] | None = None):
    """All-reduce ``buffers`` (one per rank) with in-memory messages; returns the flags."""
    size = len(buffers)
    oks = oks or [True] * size

    async def main():
        loop = asyncio.get_running_loop()
        boxes = [{} for _ in range(size)]

        def box(rank, tag):
            return boxes[rank].setdefault(tag, loop.create_future())

        def sender(rank):
            def send(partner, tag, array, ok):
                box(partner, (rank, tag)).set_result((np.array(array), ok))
            return send

        def receiver(rank):
            partners = {e.tag: e.partner for e in schedule(rank, size, len(buffers[rank]))}
            return lambda tag: box(rank, (partners[tag], tag))

        return await asyncio.gather(*[
            allreduce(b, schedule(r, size, len(b)), sender(r), receiver(r), oks[r]) for r, b in enumerate(buffers)])

    return asyncio.run(main())


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7, 8, 9, 16])
@pytest.mark.parametrize("length", [0, 1, 5, 37])
def test_every_rank_ends_with_the_same_bits_and_the_sum(rng, size, length):
    values = [rng.normal(size=length) for _ in range(size)]
    buffers = [v.copy() for v in values]
    assert all(_run(buffers))
    for b in buffers[1:]:
        np.testing.assert_array_equal(b, buffers[0])
    np.testing.assert_allclose(buffers[0], np.sum(values, axis=0), rtol=1e-12, atol=1e-12)
    # integers are summed exactly in any order
    counts = [rng.integers(-1000, 1000, size=length).astype(float) for _ in range(size)]
    exact = [c.copy() for c in counts]
    _run(exact)
    np.testing.assert_array_equal(exact[size - 1], np.sum(counts, axis=0))


def test_the_same_number_of_ranks_gives_the_same_bits_every_time(rng):
    values = [rng.normal(size=101).astype(np.float32) * 10.0 ** rng.integers(-6, 6) for _ in range(6)]
    first, second = [v.copy() for v in values], [v.copy() for v in values]
    _run(first)
    _run(second)
    np.testing.assert_array_equal(first[0], second[0])


def test_a_failed_rank_reaches_every_rank_and_nobody_waits(rng):
    for size in (2, 3, 8):
        for bad in range(size):
            oks = [r != bad for r in range(size)]
            assert _run([rng.normal(size=10) for _ in range(size)], oks) == [False] * size


@pytest.mark.parametrize("size", [2, 3, 4, 6, 8, 64])
def test_hops_and_bytes_are_those_of_the_schedule(size):
    length = 1 << 12
    longest, most = 0, 0
    for rank in range(size):
        exchanges = schedule(rank, size, length)
        longest = max(longest, sum(e.receive is not None for e in exchanges))
        most = max(most, sum(e.send.stop - e.send.start for e in exchanges if e.send is not None))
    p = 1 << int(math.log2(size))
    # Otherwise the critical path also carries the fold into a rank and the unfold out of it.
    folded = 0 if p == size else 1
    assert longest + folded == hops(size)
    assert most + folded * length == pytest.approx(sent_fraction(size) * length, abs=2)
    if p == size:  # a power of two: the bytes of a ring in 2 log2 N hops (one for a pair)
        assert hops(size) == (1 if size == 2 else 2 * int(math.log2(size)))
        assert sent_fraction(size) == pytest.approx(2 * (size - 1) / size)
