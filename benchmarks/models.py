"""The graphnet side of each workload: the same nets, built through the public API."""

from __future__ import annotations

import numpy as np

import graphnet as gn

from .workloads import DAG, dag_spec, scaling_spec

__all__ = ["build_mlp", "mlp_weights", "build_dag", "build_scaling", "clone_rng"]


def build_mlp(sizes, output: str, seed: int = 0) -> gn.Sequential:
    """``sizes[0] -> relu ... -> output`` as a :class:`graphnet.Sequential`."""
    layers = [gn.Input(sizes[0])]
    layers += [gn.Dense(n, activation="relu") for n in sizes[1:-1]]
    layers.append(gn.Dense(sizes[-1], activation=output))
    return gn.Sequential(layers, seed=seed, name="bench")


def mlp_weights(model: gn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(W, b)`` per layer in chain order (copies), for the numpy reference."""
    names = model.topological_order
    weights = model.get_weights()
    return [
        (weights[f"{src}->{dst}.weight"], weights[f"{dst}.bias"])
        for src, dst in zip(names, names[1:])
    ]


def clone_rng(graph: gn.Graph) -> np.random.Generator:
    """A generator in the same state as ``graph.rng``: it draws the same permutations
    ``fit`` will, so a reference can be fed the very same batches."""
    clone = np.random.Generator(type(graph.rng.bit_generator)())
    clone.bit_generator.state = graph.rng.bit_generator.state
    return clone


def build_dag(workload: DAG, seed: int = 0) -> gn.Graph:
    """W6's DAG (see :func:`benchmarks.workloads.dag_spec`) as a graphnet Graph."""
    spec = dag_spec(workload)
    g = gn.Graph(name="dag", seed=seed)
    for name in spec["inputs"]:
        g.add_input(name, spec["sizes"][name])
    for name in spec["hidden"]:
        g.add_hidden(name, spec["sizes"][name], activation="relu")
    g.add_output("cls", spec["sizes"]["cls"], activation="softmax", loss="categorical_crossentropy")
    g.add_output("flag", 1, activation="sigmoid", loss="binary_crossentropy")
    sources: dict[str, list[str]] = {}
    for src, dst in spec["edges"]:
        sources.setdefault(dst, []).append(src)
    for dst, srcs in sources.items():
        g.connect(srcs, dst)  # drawn on the node's whole fan-in, as PyTorch's Linear over the concatenation
    return g


def build_scaling(nodes: int, width: int, seed: int = 0, package=gn) -> gn.Graph:
    """W7's random DAG of ``nodes`` nodes, built node by node as a user would
    (with ``package``'s Graph: ``benchmarks.ab`` builds it with two checkouts)."""
    g = package.Graph(name=f"random{nodes}", seed=seed)
    sources: dict[int, list[str]] = {}
    for src, dst in scaling_spec(nodes):
        sources.setdefault(dst, []).append(f"n{src}")
    g.add_input("n0", width)
    for i in range(1, nodes):
        name = f"n{i}"
        if i == nodes - 1:
            g.add_output(name, width, activation="linear", loss="mse")
        else:
            # tanh: a 10,000-deep relu chain with skips overflows float32.
            g.add_hidden(name, width, activation="tanh")
        g.connect(sources[i], name)
    # Weights are drawn when first needed (on each node's whole fan-in): draw them
    # here, so that "build" keeps meaning a graph with its weights and "plan" the
    # compilation alone, as before.
    g.materialize()
    return g
