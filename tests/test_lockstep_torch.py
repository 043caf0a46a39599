"""Training in lock-step with PyTorch: from the same weights, fed the same
batches, graphnet's Adam ends where torch.optim.Adam does.

The quality panel compares the libraries with their own starts and shuffles;
this says that whatever is left between graphnet and PyTorch there comes from
those draws, not from the losses, the gradients or the optimizer.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn

torch = pytest.importorskip("torch", reason="the interop extra (torch) is not installed")
F = torch.nn.functional

LOSSES = {"softmax": ("categorical_crossentropy", F.cross_entropy),
          "sigmoid": ("binary_crossentropy", F.binary_cross_entropy_with_logits),
          "linear": ("mse", F.mse_loss)}


def _pair(sizes, hidden, output, seed):
    """A torch MLP (float64) and the graphnet Sequential holding its weights."""
    torch.manual_seed(seed)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[hidden]
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    net = torch.nn.Sequential(*layers).double()
    model = gn.Sequential([gn.Input(sizes[0])] + [gn.Dense(n, activation=hidden) for n in sizes[1:-1]]
                          + [gn.Dense(sizes[-1], activation=output)], loss=LOSSES[output][0], dtype="float64")
    weights, previous = {}, "input"
    dense = [name for name in model.nodes if name != "input"]
    for name, linear in zip(dense, [m for m in net if isinstance(m, torch.nn.Linear)]):
        weights[f"{previous}->{name}.weight"] = linear.weight.detach().numpy().T
        weights[f"{name}.bias"] = linear.bias.detach().numpy()
        previous = name
    model.set_weights(weights)
    return net, model


@pytest.mark.parametrize("sizes, hidden, output", [
    ((12, 16, 4), "relu", "softmax"),
    ((12, 16, 16, 1), "tanh", "linear"),
    ((12, 8, 1), "relu", "sigmoid"),
])
def test_adam_trains_as_pytorchs_from_the_same_start(sizes, hidden, output):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(203, sizes[0]))  # 203 rows: a last batch of 11
    if output == "softmax":
        y = rng.integers(0, sizes[-1], size=203)
    elif output == "sigmoid":
        y = (x[:, :1] + 0.3 * rng.normal(size=(203, 1)) > 0).astype(np.float64)
    else:
        y = np.sin(x[:, :1]) + 0.1 * rng.normal(size=(203, 1))
    net, model = _pair(sizes, hidden, output, seed=3)
    loss_fn = LOSSES[output][1]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    ours = gn.optimizers.Adam(learning_rate=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(5):
        order = rng.permutation(len(x))
        for lo in range(0, len(x), 32):
            index = torch.from_numpy(order[lo : lo + 32])
            optimizer.zero_grad()
            loss_fn(net(xt[index]), yt[index]).backward()
            optimizer.step()
        model.fit(x[order], y[order], epochs=1, batch_size=32, shuffle=False,
                  optimizer=ours if epoch == 0 else None, verbose=0)
    assert ours.iterations == 5 * 7
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    expected = {"softmax": lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(
        1, keepdims=True), "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "linear": lambda z: z}[output](logits)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10, atol=1e-12)
    start = _pair(sizes, hidden, output, seed=3)[1]  # and training moved the weights
    assert max(np.abs(model.get_weights()[k] - v).max() for k, v in start.get_weights().items()) > 1e-3


def test_a_parameter_frozen_for_some_steps_trains_on_as_in_torch():
    """torch.optim.Adam keeps the moments and step count of a parameter whose
    gradient is None (frozen); graphnet holds them while it is frozen."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 2)
    g.add_hidden("h", 3, activation="tanh")
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    torch.manual_seed(0)
    hidden, out = torch.nn.Linear(2, 3).double(), torch.nn.Linear(3, 1).double()
    g.set_weights({"x->h.weight": hidden.weight.detach().numpy().T, "h.bias": hidden.bias.detach().numpy(),
                   "h->y.weight": out.weight.detach().numpy().T, "y.bias": out.bias.detach().numpy()})
    g.compile(loss="mse", optimizer=gn.optimizers.Adam(lr=0.05))
    opt = torch.optim.Adam([*hidden.parameters(), *out.parameters()], lr=0.05, eps=1e-8)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 2)), rng.normal(size=(16, 1))
    for frozen in [False, False, True, True, False, False]:
        (g.freeze if frozen else g.unfreeze)("y")
        for p in out.parameters():
            p.requires_grad_(not frozen)
        g.train_step(x, y)
        opt.zero_grad(set_to_none=True)
        F.mse_loss(out(torch.tanh(hidden(torch.from_numpy(x)))), torch.from_numpy(y)).backward()
        opt.step()
    np.testing.assert_allclose(g.get_weights()["y.bias"], out.bias.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.get_weights()["h->y.weight"], out.weight.detach().numpy().T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.get_weights()["x->h.weight"], hidden.weight.detach().numpy().T, rtol=1e-12,
                               atol=1e-14)
