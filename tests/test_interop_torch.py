"""PyTorch import, checked against torch itself."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the interop extra (torch) is not installed")

import graphnet as gn

nn = torch.nn
TOL = 1e-5


def _torch_predict(module, x):
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(24, 5)).astype("float32")


@pytest.fixture
def every_layer():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(8, 7), nn.LeakyReLU(0.2),
        nn.Linear(7, 6), nn.ELU(alpha=0.5),
        nn.Linear(6, 6), nn.GELU(),
        nn.Linear(6, 6), nn.GELU(approximate="tanh"), nn.Identity(),
        nn.Linear(6, 5, bias=False), nn.Tanh(),
        nn.Linear(5, 5), nn.Softplus(),
        nn.Linear(5, 4), nn.ReLU(), nn.Sigmoid(),  # two activations in a row
        nn.Linear(4, 3), nn.Softmax(dim=1),
    )


def test_every_layer_type(every_layer, x):
    g = gn.from_torch(every_layer)
    assert isinstance(g, gn.Sequential)
    np.testing.assert_allclose(g.predict(x), _torch_predict(every_layer, x), atol=TOL)
    layers = {n.name: n for n in g.layers}
    assert layers["dense"].dropout == pytest.approx(0.1)
    assert layers["dense_1"].activation.negative_slope == pytest.approx(0.2)
    assert layers["dense_2"].activation.alpha == 0.5
    assert layers["dense_3"].activation.approximate is False
    assert layers["dense_4"].activation.approximate is True
    assert not layers["dense_5"].trainable and np.all(layers["dense_5"].bias == 0)  # no bias
    # ReLU folded into dense_7; Sigmoid rides on a frozen identity node.
    assert layers["dense_7"].activation.name == "relu"
    assert layers["sigmoid"].activation.name == "sigmoid"
    assert not g.synapse("dense_7", "sigmoid").trainable
    assert np.array_equal(g.synapse("dense_7", "sigmoid").weight, np.eye(4))
    assert g.nodes[g.output].loss.name == "categorical_crossentropy"


def test_weights_are_transposed(x):
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(5, 3))
    g = gn.from_torch(module)
    np.testing.assert_array_equal(g.synapse("input", "dense").weight, module[0].weight.detach().numpy().T)
    np.testing.assert_array_equal(g.nodes["dense"].bias, module[0].bias.detach().numpy())


def test_one_training_step_matches_torch(x):
    """Imported weights train as torch trains them: one SGD step on mse, compared."""
    torch.manual_seed(2)
    module = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    g = gn.from_torch(module)
    assert g.dtype == np.float64
    y = np.random.default_rng(3).normal(size=(24, 2))
    g.train_step(x, y, optimizer=gn.optimizers.SGD(lr=0.1))
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    loss = nn.functional.mse_loss(module(torch.from_numpy(x.astype("float64"))), torch.from_numpy(y))
    loss.backward()
    optimizer.step()
    np.testing.assert_allclose(g.synapse("input", "dense").weight, module[0].weight.detach().numpy().T, atol=1e-12)
    np.testing.assert_allclose(g.nodes["dense_1"].bias, module[2].bias.detach().numpy(), atol=1e-12)


def test_imported_model_trains_further(every_layer, x):
    g = gn.from_torch(every_layer, seed=0)
    y = np.random.default_rng(4).integers(0, 3, size=24)
    history = g.fit(x, y, epochs=30, batch_size=8, optimizer={"name": "adam", "lr": 0.01}, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.all(g.nodes["dense_5"].bias == 0)


def test_names_loss_and_nesting(x):
    torch.manual_seed(5)
    module = nn.Sequential(OrderedDict([
        ("encoder", nn.Sequential(nn.Linear(5, 4), nn.ReLU())),
        ("head", nn.Linear(4, 1)),
        ("prob", nn.Sigmoid()),
    ]))
    g = gn.from_torch(module, name="clf", input_name="features", loss="mse")
    assert [n.name for n in g.layers] == ["features", "dense", "head"]
    assert g.name == "clf" and g.nodes["head"].loss.name == "mse"
    assert gn.from_torch(module).nodes["head"].loss.name == "binary_crossentropy"
    np.testing.assert_allclose(g.predict(x), _torch_predict(module, x), atol=TOL)


def test_leading_activation_and_dropout_get_identity_nodes(x):
    torch.manual_seed(6)
    module = nn.Sequential(nn.Dropout(0.5), nn.Tanh(), nn.Linear(5, 2))
    g = gn.from_torch(module)
    assert [n.name for n in g.layers] == ["input", "dropout", "tanh", "dense"]
    assert g.nodes["dropout"].dropout == 0.5
    np.testing.assert_allclose(g.predict(x), _torch_predict(module, x), atol=TOL)


@pytest.mark.parametrize(
    "module, message",
    [
        (nn.Sequential(nn.Linear(5, 3), nn.Softmax(dim=0)), r"module '1' \(torch.nn.modules.activation.Softmax\) cannot be represented: dim=0"),
        (nn.Sequential(nn.Linear(5, 3), nn.Softplus(beta=2)), "beta=2"),
        (nn.Sequential(nn.Linear(5, 3), nn.LeakyReLU(1.5)), "negative_slope must be in"),
        (nn.Sequential(nn.Linear(5, 3), nn.Conv1d(1, 1, 1)), r"module '1' \(torch.nn.modules.conv.Conv1d\) cannot be imported"),
        (nn.Sequential(nn.Linear(5, 3), nn.Dropout(0.2)), "dropout applies to the model output"),
        (nn.Sequential(nn.ReLU()), "has no Linear layer"),
        (nn.Sequential(nn.Linear(5, 3), nn.Linear(4, 2)), r"module '1' .* takes 4 features but receives 3"),
        (nn.Linear(5, 3), "expects a torch.nn.Sequential, got torch.nn.modules.linear.Linear"),
    ],
)
def test_unsupported_modules_are_named(module, message):
    with pytest.raises(gn.ModelImportError, match=message):
        gn.from_torch(module)
