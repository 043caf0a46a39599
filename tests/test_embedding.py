"""The embedding synapse (a synapse from a categorical input) against the
same net fed a dense one-hot matrix, in float64: forward, gradients
(repeated categories, unknown and missing values, which share code 0),
Adam's updates, and memory that does not grow with the categories."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import graphnet as gn

CATEGORIES = ["a", "b", "c", "d", "e"]


def twins():
    """The same net twice: ``cat`` a categorical input, or ``cat`` a one-hot input of 6 columns."""
    made = []
    for categorical in (True, False):
        g = gn.Graph(name="twin", seed=3, dtype="float64")
        if categorical:
            g.add_input("cat", categories=CATEGORIES)
        else:
            g.add_input("cat", len(CATEGORIES) + 1)
        g.add_input("num", 2)
        g.add_hidden("h", 4, activation="tanh")
        g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
        g.add_output("r", 2)
        g.connect(["cat", "num"], "h")
        g.connect("cat", "r")  # a second table, straight into an output, beside h
        g.connect("h", ["y", "r"][0])
        g.connect("h", "r")
        made.append(g)
    embedded, dense = made
    dense.set_weights(embedded.get_weights())
    return embedded, dense


def data(rng, rows=9):
    # repeated categories, an unknown one and missing ones: codes 0 several times
    values = np.array(["b", "b", "zzz", None, "e", "a", "b", np.nan, "d"], dtype=object)[:rows]
    codes = np.array([2, 2, 0, 0, 5, 1, 2, 0, 4])[:rows]
    num = rng.normal(size=(rows, 2))
    y = {"y": rng.integers(0, 3, rows), "r": rng.normal(size=(rows, 2))}
    return {"cat": values, "num": num}, {"cat": np.eye(6)[codes], "num": num}, y


def test_forward_equals_the_one_hot_net(rng):
    embedded, dense = twins()
    x_cat, x_hot, _ = data(rng)
    p, q = embedded.predict(x_cat), dense.predict(x_hot)
    for name in p:
        np.testing.assert_allclose(p[name], q[name], rtol=0, atol=1e-14)


def test_gradients_equal_the_one_hot_net(rng):
    embedded, dense = twins()
    x_cat, x_hot, y = data(rng)
    loss_e, grads_e = embedded.gradients(x_cat, y)
    loss_d, grads_d = dense.gradients(x_hot, y)
    assert loss_e == pytest.approx(loss_d, rel=1e-14)
    for key in grads_d:
        np.testing.assert_allclose(grads_e[key], grads_d[key], rtol=0, atol=1e-14, err_msg=key)
    # rows of categories that no row used get no gradient; code 0 gets the unknown and missing rows'
    assert not grads_e["cat->h.weight"][3].any()
    assert grads_e["cat->h.weight"][0].any()


def test_the_gradient_passes_central_differences(rng):
    embedded, _ = twins()
    x_cat, _, y = data(rng)
    report = gn.check_gradients(embedded, x_cat, y)
    assert report.ok, report


def test_adam_updates_every_row_as_the_one_hot_net_does(rng):
    """Dense Adam: moments of untouched rows decay and those rows keep moving
    (as torch.optim.Adam over nn.Embedding(sparse=False))."""
    embedded, dense = twins()
    x_cat, x_hot, y = data(rng)
    for _ in range(3):
        embedded.train_step(x_cat, y, optimizer="adam")
        dense.train_step(x_hot, y, optimizer="adam")
        x_cat, x_hot = {k: v[::-1].copy() for k, v in x_cat.items()}, {k: v[::-1].copy() for k, v in x_hot.items()}
        y = {k: v[::-1].copy() for k, v in y.items()}
    we, wd = embedded.get_weights(), dense.get_weights()
    for key in wd:
        np.testing.assert_allclose(we[key], wd[key], rtol=0, atol=1e-12, err_msg=key)


def test_torch_embedding_with_adam_trains_alike(rng):
    torch = pytest.importorskip("torch")
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("cat", categories=list(range(7)))
    g.add_output("y", 3)
    g.connect("cat", "y")
    table, bias = g.get_weights()["cat->y.weight"], g.get_weights()["y.bias"]
    emb = torch.nn.Embedding(8, 3, dtype=torch.float64)
    b = torch.nn.Parameter(torch.tensor(bias))
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(table))
    opt = torch.optim.Adam([emb.weight, b], lr=1e-3)
    codes = np.array([1, 1, 4, 0, 7, 7, 7, 2])
    values = codes - 1  # categories 0..6 have codes 1..7; -1 is unknown
    target = rng.normal(size=(8, 3))
    for step in range(4):
        half = slice(0, 4) if step % 2 == 0 else slice(4, 8)  # rows untouched in some steps
        g.train_step(values[half], target[half], optimizer=gn.optimizers.Adam(lr=1e-3) if step == 0 else None)
        opt.zero_grad()
        out = emb(torch.tensor(codes[half])) + b
        ((out - torch.tensor(target[half])) ** 2).mean().backward()
        opt.step()
    np.testing.assert_allclose(g.get_weights()["cat->y.weight"], emb.weight.detach().numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("categories", [100_000])
def test_many_categories_train_in_memory_of_batch_times_width(rng, categories):
    g = gn.Graph(seed=0)
    g.add_input("id", categories=list(range(categories)))
    g.add_hidden("h", 8)
    g.add_output("y", 1)
    g.connect("id", "h")
    g.connect("h", "y")
    batch = 64
    x = rng.integers(0, categories, size=batch)
    y = rng.normal(size=(batch, 1))
    g.train_step(x, y)  # the optimizer's state and the workspace, once
    tracemalloc.start()
    try:
        g.train_step(x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_hot = batch * (categories + 1) * 4  # what a dense one-hot batch would need
    assert peak < one_hot / 20, (peak, one_hot)


def test_attributions_refuse_a_categorical_input(rng):
    embedded, _ = twins()
    x_cat, _, _ = data(rng)
    with pytest.raises(gn.GraphError, match="categorical"):
        embedded.attributions(x_cat, output="r")


@pytest.mark.parametrize("rows", [7, 5_000])  # the one-hot product, and the sorted sums
def test_scatter_rows_adds_repeated_rows(rng, rows):
    from graphnet.backend import CPU

    index = rng.integers(0, rows, 300)
    index[:50] = 3  # many repeats
    values = rng.normal(size=(300, 4))
    out = np.full((rows, 4), np.nan)
    CPU.scatter_rows(out, index, values)
    expected = np.zeros((rows, 4))
    np.add.at(expected, index, values)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_a_device_trains_the_embedding_as_the_cpu(standin, rng):
    """The device code path (codes sent to the device, gathered and scattered
    there with xp.take and xp.add.at) on the numpy stand-in for CuPy."""
    x_cat, _, y = data(rng)
    weights, predictions = {}, {}
    for device in ("cpu", "standin"):
        g, _ = twins()
        g.to(device)
        for _ in range(3):
            g.train_step(x_cat, y, optimizer="adam")
        g.fit(x_cat, y, epochs=2, batch_size=4, verbose=0)
        weights[device], predictions[device] = g.get_weights(), g.predict(x_cat)["r"]
    np.testing.assert_allclose(predictions["standin"], predictions["cpu"], rtol=1e-12)
    for key in weights["cpu"]:
        np.testing.assert_allclose(weights["standin"][key], weights["cpu"][key], rtol=0, atol=1e-12, err_msg=key)
