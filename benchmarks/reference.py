"""The hand-fused numpy trainer: the practical speed limit for a numpy engine.

Everything graphnet's plan does for a chain of dense layers, written out by
hand for that one shape of net, with nothing general left: one flat parameter
buffer with every weight and bias a view, one flat gradient buffer that the
matrix products write into, activations and deltas preallocated for the full
batch (the last, shorter batch uses their leading rows), batches gathered with
``np.take(..., out=)``, every elementwise step in place, float32 throughout,
and Adam as whole-buffer passes with the same subnormal flush graphnet uses.

The maths is graphnet's, step for step (the same loss values, the same fused
output deltas, Adam with its bias correction folded into the step size), so
the two can be started from the same weights, fed the same batches, and their
weights compared afterwards. It is benchmark code: it checks nothing.

``xp=cupy`` runs the same trainer on a GPU (``python -m benchmarks --device
cuda``): the straightforward CuPy port a user would write, which reads each
batch's loss as a Python float (a synchronisation per batch), as this
trainer does on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["ReferenceMLP"]

_FLUSH_EVERY = 64  # as graphnet.optimizers
_FLUSH_BELOW = 1e-30


class ReferenceMLP:
    """A relu MLP with a softmax, sigmoid or linear output, trained by Adam.

    Parameters
    ----------
    sizes : tuple of int
        ``(inputs, hidden..., outputs)``.
    output : {"softmax", "sigmoid", "linear"}
        With categorical cross-entropy (integer labels), binary cross-entropy
        or mean squared error.
    batch : int
        Rows per training batch (buffers are made for it).
    weights : list of (W, b), optional
        Initial values, e.g. from ``graph.get_weights()``; by default He-normal
        weights drawn straight into the parameter buffer (zero biases).
    lr, beta1, beta2, eps : float
        Adam's hyperparameters (graphnet's and PyTorch's defaults).
    rng : numpy.random.Generator, optional
        Draws each epoch's permutation (``rng.permutation(rows)``, as ``fit``).
    xp : module, optional
        numpy (the default) or CuPy; the data passed in must live there too.
    """

    def __init__(self, sizes, output, batch, weights=None, lr=1e-3, beta1=0.9, beta2=0.999,
                 eps=1e-8, rng=None, seed=0, xp=np):
        self.xp = xp
        if xp is np:
            self.special = special
        else:
            import cupyx.scipy.special

            self.special = cupyx.scipy.special
        self.sizes, self.output, self.batch = tuple(sizes), output, batch
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        shapes = []
        for a, b in zip(self.sizes, self.sizes[1:]):
            shapes += [(a, b), (b,)]
        xp = self.xp
        total = sum(math.prod(s) for s in shapes)
        dtype = np.float32
        self.params = xp.empty(total, dtype)
        self.grads = xp.empty(total, dtype)
        self.m = xp.zeros(total, dtype)
        self.v = xp.zeros(total, dtype)
        self.tmp = xp.empty(total, dtype)
        views, grad_views, offset = [], [], 0
        for shape in shapes:
            n = math.prod(shape)
            views.append(self.params[offset:offset + n].reshape(shape))
            grad_views.append(self.grads[offset:offset + n].reshape(shape))
            offset += n
        self.W, self.b = views[0::2], views[1::2]
        self.gW, self.gb = grad_views[0::2], grad_views[1::2]
        if weights is None:
            init = np.random.default_rng(seed)
            for W in self.W:
                W[...] = xp.asarray(init.standard_normal(W.shape, dtype=dtype))
                W *= math.sqrt(2.0 / W.shape[0])
            for b in self.b:
                b[...] = 0
        else:
            for (W, b), (w0, b0) in zip(zip(self.W, self.b), weights):
                W[...] = xp.asarray(w0)
                b[...] = xp.asarray(b0)
        self.t = 0
        # Training buffers for a full batch: the input, each layer's activation
        # (overwritten in backward by that layer's delta) and the targets.
        self.xb = xp.empty((batch, self.sizes[0]), dtype)
        self.acts = [xp.empty((batch, n), dtype) for n in self.sizes[1:]]
        self.deltas = [xp.empty((batch, n), dtype) for n in self.sizes[1:]]
        label_shape = (batch,) if output == "softmax" else (batch, self.sizes[-1])
        self.yb = xp.empty(label_shape, np.intp if output == "softmax" else dtype)
        self.ones = xp.ones(batch, dtype)
        self.rows_index = xp.arange(batch)

    # ----------------------------------------------------------------- training
    def train_epoch(self, x: np.ndarray, y: np.ndarray) -> float:
        """One shuffled epoch over ``x`` (rows, inputs), ``y``; returns the mean loss."""
        rows = x.shape[0]
        order = self.rng.permutation(rows)
        if self.xp is not np:
            return self._train_epoch_gpu(x, y, order)
        total = 0.0
        for lo in range(0, rows, self.batch):
            index = order[lo:lo + self.batch]
            n = len(index)
            xb = np.take(x, index, axis=0, out=self.xb[:n], mode="clip")
            yb = np.take(y, index, axis=0, out=self.yb[:n], mode="clip")
            total += self.step(xb, yb, n) * n
        return total / rows

    def _train_epoch_gpu(self, x, y, order) -> float:
        """:meth:`train_epoch` with ``x`` and ``y`` on the GPU (CuPy's take has no ``mode``)."""
        xp, rows = self.xp, x.shape[0]
        order = xp.asarray(order)
        total = 0.0
        for lo in range(0, rows, self.batch):
            index = order[lo:lo + self.batch]
            n = len(index)
            xb = xp.take(x, index, axis=0, out=self.xb[:n])
            yb = xp.take(y, index, axis=0, out=self.yb[:n])
            total += self.step(xb, yb, n) * n
        return total / rows

    def step(self, xb, yb, n: int) -> float:
        """Forward, backward and one Adam update on a batch of ``n`` rows."""
        xp = self.xp
        acts = [xb] + [a[:n] for a in self.acts]
        last = len(self.W) - 1
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = xp.dot(acts[i], W, out=acts[i + 1])
            z += b
            if i < last:
                xp.maximum(z, 0, out=z)
        delta, loss = self._output(acts[-1], yb, n)
        ones = self.ones[:n]
        for i in range(last, -1, -1):
            xp.dot(acts[i].T, delta, out=self.gW[i])
            xp.dot(ones, delta, out=self.gb[i])
            if i == 0:
                break
            previous = xp.dot(delta, self.W[i].T, out=self.deltas[i - 1][:n])
            a = acts[i]  # its weight gradient is taken: reuse it for the relu mask
            xp.greater(a, 0, out=a, casting="unsafe")
            delta = xp.multiply(previous, a, out=previous)
        self._adam()
        return loss

    def _output(self, z, y, n):
        """``dL/dz`` (written over ``z``) and the batch's loss, as graphnet computes them."""
        xp = self.xp
        if self.output == "softmax":
            z -= z.max(axis=1, keepdims=True)
            picked = z[self.rows_index[:n], y]
            xp.exp(z, out=z)
            sums = z.sum(axis=1, keepdims=True)
            loss = float(xp.mean(xp.log(sums[:, 0]) - picked))
            z /= sums
            z[self.rows_index[:n], y] -= 1
            z *= 1.0 / n
            return z, loss
        if self.output == "sigmoid":
            loss = float(xp.mean(xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))))
            self.special.expit(z, out=z)
            z -= y
            z *= 1.0 / z.size
            return z, loss
        z -= y
        loss = float(xp.vdot(z, z)) / z.size
        z *= 2.0 / z.size
        return z, loss

    def _adam(self):
        """Adam over the whole buffer, graphnet's formula, pass for pass."""
        xp = self.xp
        self.t += 1
        m, v, g, tmp = self.m, self.v, self.grads, self.tmp
        m -= g
        m *= self.beta1
        m += g
        xp.multiply(g, g, out=tmp)
        v -= tmp
        v *= self.beta2
        v += tmp
        correction2 = math.sqrt(1.0 - self.beta2**self.t)
        step_size = self.lr * correction2 / (1.0 - self.beta1**self.t)
        xp.sqrt(v, out=tmp)
        tmp += self.eps * correction2
        xp.divide(m, tmp, out=tmp)
        tmp *= step_size
        self.params -= tmp
        if self.t % _FLUSH_EVERY == 0:
            for state in (m, v):
                state[xp.abs(state) < _FLUSH_BELOW] = 0

    # ---------------------------------------------------------------- inference
    def predict(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Outputs for ``x`` in chunks, the last layer written straight into the result
        (on a GPU: ``x`` on the host, sent chunk by chunk; the result on the device)."""
        xp = self.xp
        rows = x.shape[0]
        result = xp.empty((rows, self.sizes[-1]), np.float32)
        buffers = [xp.empty((chunk, n), np.float32) for n in self.sizes[1:-1]]
        last = len(self.W) - 1
        for lo in range(0, rows, chunk):
            hi = min(rows, lo + chunk)
            a = x[lo:hi] if xp is np else xp.asarray(x[lo:hi])
            for i, (W, b) in enumerate(zip(self.W, self.b)):
                out = result[lo:hi] if i == last else buffers[i][: hi - lo]
                xp.dot(a, W, out=out)
                out += b
                if i < last:
                    xp.maximum(out, 0, out=out)
                a = out
            if self.output == "softmax":
                a -= a.max(axis=1, keepdims=True)
                xp.exp(a, out=a)
                a /= a.sum(axis=1, keepdims=True)
            elif self.output == "sigmoid":
                self.special.expit(a, out=a)
        return result

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Copies of ``(W, b)`` per layer (numpy arrays)."""
        host = (lambda a: a.copy()) if self.xp is np else self.xp.asnumpy
        return [(host(W), host(b)) for W, b in zip(self.W, self.b)]
