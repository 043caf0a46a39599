"""The embedding synapse: a synapse from a categorical input, run as a row gather.

A categorical input of ``k + 1`` codes is a one-hot input that is never
built: its synapse's weight ``W`` (``(k + 1, size)``) is an ordinary dense
weight, and ``onehot(codes) @ W`` is row ``codes[i]`` of ``W`` for row ``i``.
So forward gathers rows (``W[codes]``) and backward adds each row's
``delta`` into the row it came from (``dW[codes[i]] += delta[i]``, repeated
codes adding up), the rest of ``dW`` zero: exactly the dense one-hot
synapse's gradient ``onehot.T @ delta``, in memory proportional to
batch x width, never batch x categories.

The gradient stays a dense ``(k + 1, size)`` array, so the optimizers treat
it as any other weight: Adam's moments decay for every row, rows a batch did
not touch included, as PyTorch's ``nn.Embedding`` (``sparse=False``) with
``torch.optim.Adam`` does and as the dense one-hot net would. That keeps one
update rule for every parameter and makes the embedding path and the
one-hot path the same model; the price is an optimizer pass over the whole
table each step, which for a table of ``10^5 x 32`` is a few milliseconds.

A :class:`~graphnet.plan.Step` with such a synapse runs the two functions
here instead of its plain loop, so steps without one pay nothing.
"""

from __future__ import annotations

__all__ = ["forward", "backward"]


def forward(step, x, z, scratch, dot, take) -> None:
    """``z = Σ_edges (W[codes] or x @ W)`` for one step, without the bias."""
    first = True
    for src, weight, _, _, _, gather in step.edges:
        out = z if first else scratch[step.size]
        if gather:
            take(weight, x[src], out)
        else:
            dot(x[src], weight, out=out)
        if not first:
            z += out
        first = False


def backward(step, x, delta, upstream, scratch, sizes, dot, scatter_rows) -> None:
    """Every incoming weight's gradient of one step, and the upstream
    gradient of its non-input sources (as :meth:`Plan.backward` does)."""
    for src, weight, weight_grad, from_input, writes_first, gather in step.edges:
        if gather:
            scatter_rows(weight_grad, x[src], delta)
            continue
        dot(x[src].T, delta, out=weight_grad)
        if from_input:
            continue
        if writes_first:
            dot(delta, weight.T, out=upstream[src])
        else:
            tmp = scratch[sizes[src]]
            dot(delta, weight.T, out=tmp)
            upstream[src] += tmp
