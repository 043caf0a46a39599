"""The door of a worker to the ranks of :func:`graphnet.distributed.fit`
(:mod:`graphnet._rank`): the task that opens a rank, and the handlers it adds
to the worker, through which the client and the other ranks reach the ranks
over distributed's comms (``worker.handlers``, as distributed's own P2P
shuffle extends a worker).

Each handler finds its rank by ``(key, rank)``; a rank that is not there
(closed, or its worker restarted) answers ``{"lost": ...}``, which the
client takes as a lost worker.
"""

from __future__ import annotations

import pickle

from ._rank import RANKS, Rank

__all__ = ["HANDLERS", "open_rank"]


def open_rank(key: str, index: int, size: int, blob: bytes, mode: str, chosen, train, validation) -> str:
    """Open rank ``index`` of ``size`` on this worker (run as a dask task):
    ``blob`` is the pickled ``(graph, optimizer)``, ``train`` and
    ``validation`` its group's partitions. Returns the worker's address."""
    from distributed import get_worker

    worker = get_worker()
    worker.handlers.update(HANDLERS)
    graph, optimizer = pickle.loads(blob)
    old = RANKS.pop((key, index), None)
    if old is not None:  # the task ran again
        old.close()
    RANKS[(key, index)] = Rank(key, index, size, worker, graph, optimizer, mode, chosen, train, validation)
    return worker.address



_GONE = {"lost": "the rank is not on this worker any more"}


def _lookup(key: str, rank: int) -> Rank | None:
    found = RANKS.get((key, rank))
    if found is not None:
        found.start()
    return found


async def _update(key, rank, peers=None, state=None):
    found = _lookup(key, rank)
    if found is None:
        return _GONE
    if peers is not None:
        found.peers = list(peers)
    if state is not None:
        await found.loop.run_in_executor(found.pool, found.change, *state)
    return {"ok": True}


async def _plan(key, rank, specs):
    found = _lookup(key, rank)
    if found is None:
        return _GONE
    found.add(specs)
    return {"ok": True}


async def _result(key, rank, step, allow):
    """Leave to run up to step ``allow``; the results from ``step`` on that are done."""
    from distributed.protocol import to_serialize

    found = _lookup(key, rank)
    if found is None:
        return _GONE
    found.permit(allow)
    results = await found.result(step)
    if "rows" not in results[0]:  # why no step will come: lost, stopped, an error
        return results[0]
    return to_serialize({"results": results})


async def _evaluate(key, rank, which, indices, chunk):
    from distributed.protocol import to_serialize

    found = _lookup(key, rank)
    if found is None:
        return _GONE
    state = await found.loop.run_in_executor(found.pool, found.tally, which, indices, chunk)
    return to_serialize({"state": state})


async def _probe(key, rank, sizes, reps, rounds):
    found = _lookup(key, rank)
    if found is None:
        return _GONE
    return {"times": await found.probe(sizes, reps, rounds)}


async def _stream(comm, key, rank):
    """A peer's connection to rank ``rank``: its messages until it closes."""
    from distributed.comm import CommClosedError

    try:
        while True:
            message = await comm.read()
            found = _lookup(key, rank)
            if found is not None:
                found.deliver(message["tag"], message["data"], message["ok"])
    except CommClosedError:
        pass


async def _close(key):
    for (k, _), found in list(RANKS.items()):
        if k == key:
            found.close()
    return {"ok": True}


HANDLERS = {
    "graphnet_update": _update,
    "graphnet_plan": _plan,
    "graphnet_result": _result,
    "graphnet_evaluate": _evaluate,
    "graphnet_probe": _probe,
    "graphnet_stream": _stream,
    "graphnet_close": _close,
}
