"""Structure algorithms (graphnet._topology): order, reachability, chains, cycles."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from graphnet import CycleError
from graphnet._topology import is_chain, reachable, refuse_cycles, topological_sort


@pytest.mark.parametrize("seed", range(4))
def test_topological_sort_is_networkx_lexicographical_order(seed):
    rng = np.random.default_rng(seed)
    names = [f"n{i}" for i in rng.permutation(30)]
    insertion = {n: i for i, n in enumerate(names)}
    structure = nx.DiGraph()
    structure.add_nodes_from(names)
    for _ in range(60):
        a, b = sorted(rng.choice(30, size=2, replace=False))
        structure.add_edge(names[a], names[b])
    expected = list(nx.lexicographical_topological_sort(structure, key=insertion.__getitem__))
    assert list(topological_sort(structure, insertion)) == expected


def test_reachable_both_ways():
    structure = nx.DiGraph([("a", "b"), ("b", "c"), ("d", "c")])
    assert reachable(structure, ["a"], forward=True) == {"a", "b", "c"}
    assert reachable(structure, ["c"], forward=False) == {"a", "b", "c", "d"}


def test_is_chain():
    assert is_chain(["x", "h", "y"], ["input", "hidden", "output"], [("x", "h"), ("h", "y")])
    assert not is_chain(["x", "y"], ["input", "hidden"], [("x", "y")])
    assert not is_chain(["x", "h", "y"], ["input", "hidden", "output"], [("h", "y"), ("x", "h")])
    assert not is_chain(["x"], ["input"], [])


def test_refuse_cycles_shows_one():
    refuse_cycles([("a", "b"), ("b", "c")], "spec.synapses")
    with pytest.raises(CycleError, match=r"spec.synapses: the synapses make the cycle b -> c -> b"):
        refuse_cycles([("a", "b"), ("b", "c"), ("c", "b")], "spec.synapses")
    with pytest.raises(CycleError, match=r"the synapse 'a' -> 'a' makes the cycle a -> a"):
        refuse_cycles([("a", "a")], "spec.synapses")
