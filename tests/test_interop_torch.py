"""PyTorch import, checked against torch itself."""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the interop extra (torch) is not installed")

from interop import trains_saves_exports

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
        (nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.BatchNorm1d(3)),
         r"module '2' \(torch.nn.modules.batchnorm.BatchNorm1d\) follows 'dense', not the output of a Linear"),
        (nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3, track_running_stats=False)), "keeps no running statistics"),
        ("not a module", "expects a torch.nn.Module, got builtins.str"),
    ],
)
def test_unsupported_modules_are_named(module, message):
    with pytest.raises(gn.ModelImportError, match=message):
        gn.from_torch(module)


def test_a_single_layer_imports(x):
    torch.manual_seed(7)
    layer = nn.Linear(5, 3)
    np.testing.assert_allclose(gn.from_torch(layer).predict(x), _torch_predict(layer, x), atol=TOL)


def test_a_module_used_twice_is_applied_twice(x, tmp_path):
    torch.manual_seed(8)
    act = nn.Tanh()
    module = nn.Sequential(nn.Linear(5, 4), act, nn.Linear(4, 4), act, act, nn.Linear(4, 2))
    g = gn.from_torch(module)
    assert [n.activation.name for n in g.layers[1:]] == ["tanh", "tanh", "tanh", "linear"]
    np.testing.assert_allclose(g.predict(x), _torch_predict(module, x), atol=TOL)
    trains_saves_exports(g, x, tmp_path)


def test_a_linear_used_twice_is_refused():
    shared = nn.Linear(4, 4)
    module = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), shared, nn.ReLU(), shared)
    with pytest.raises(gn.ModelImportError, match=r"module '2' \(torch.nn.modules.linear.Linear\) is called more than "
                                                  r"once: its weights are tied .* use one nn.Linear per call"):
        gn.from_torch(module)


@pytest.mark.parametrize("layer", [nn.SiLU(), nn.SELU(), nn.Mish(), nn.Hardsigmoid(), nn.Softsign()],
                         ids=lambda m: type(m).__name__)
def test_new_activation_modules(layer, x):
    torch.manual_seed(9)
    module = nn.Sequential(nn.Linear(5, 6), layer, nn.Linear(6, 3), layer)
    with torch.no_grad():
        module[0].weight.mul_(4)  # reach the saturated and negative parts too
    np.testing.assert_allclose(gn.from_torch(module).predict(x), _torch_predict(module, x), atol=TOL)


def _with_statistics(bn: nn.BatchNorm1d, seed: int) -> nn.BatchNorm1d:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.normal_(generator=generator)
        bn.running_var.uniform_(0.3, 3.0, generator=generator)
        if bn.affine:
            bn.weight.normal_(generator=generator)
            bn.bias.normal_(generator=generator)
    return bn


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_folds_into_the_linear_before(affine, x):
    torch.manual_seed(10)
    module = nn.Sequential(nn.Linear(5, 6, bias=False), _with_statistics(nn.BatchNorm1d(6, affine=affine), 1),
                           nn.ReLU(), nn.Linear(6, 2))
    g = gn.from_torch(module)
    assert [n.name for n in g.layers] == ["input", "dense", "dense_1"]
    assert g.nodes["dense"].trainable == affine  # the folded bias is the batch norm's shift
    np.testing.assert_allclose(g.predict(x), _torch_predict(module, x), atol=TOL)


class _TwoTowers(nn.Module):
    """Two inputs, a residual +, torch.cat, functional activations and a tensor
    method, a batch norm, and a dict of outputs in forward's order."""

    def __init__(self):
        super().__init__()
        self.left = nn.Linear(5, 6)
        self.right = nn.Linear(3, 6)
        self.norm = nn.BatchNorm1d(6)
        self.mix = nn.Linear(9, 4)
        self.head = nn.Linear(4, 3)
        self.drop = nn.Dropout(0.1)

    def forward(self, features, extra):
        joined = torch.nn.functional.gelu(self.norm(self.left(features)) + self.right(extra))
        mixed = self.drop(self.mix(torch.cat([joined.tanh(), extra], dim=1)))
        return {"scores": torch.softmax(self.head(torch.relu(mixed)), dim=-1),
                "aux": torch.nn.functional.silu(mixed) + torch.sigmoid(mixed)}


def test_a_traced_dag(tmp_path):
    torch.manual_seed(11)
    module = _TwoTowers()
    _with_statistics(module.norm, 2)
    rng = np.random.default_rng(12)
    data = {"features": rng.normal(size=(16, 5)).astype("float32"), "extra": rng.normal(size=(16, 3)).astype("float32")}
    g = gn.from_torch(module)
    assert type(g) is gn.Graph and g.name == "_TwoTowers"
    assert g.inputs == ["features", "extra"] and g.outputs == ["scores", "aux"]
    module.eval()
    with torch.no_grad():
        expected = module(torch.from_numpy(data["features"]), torch.from_numpy(data["extra"]))
    got = g.predict(data)
    for name in g.outputs:
        np.testing.assert_allclose(got[name], expected[name].numpy(), atol=TOL)
    assert module.training is False
    module.train()
    gn.from_torch(module)  # the check runs in eval mode and restores the module's mode
    assert module.training and module.norm.training
    trains_saves_exports(g, data, tmp_path)


def test_tuple_outputs_keep_their_order(x):
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 2), nn.Linear(5, 3)

        def forward(self, x):
            return self.b(x), torch.sigmoid(self.a(x))

    torch.manual_seed(13)
    module = Heads()
    g = gn.from_torch(module, input_name="x")
    assert g.outputs == ["b", "a"] and g.inputs == ["x"]
    with torch.no_grad():
        expected = module(torch.from_numpy(x))
    for name, want in zip(g.outputs, expected):
        np.testing.assert_allclose(g.predict(x)[name], want.numpy(), atol=TOL)


def test_untraceable_and_stateful_forwards_are_refused(x):
    class Branching(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -self.fc(x)

    with pytest.raises(gn.ModelImportError, match="torch.fx cannot trace forward .*TraceError"):
        gn.from_torch(Branching())

    class Counting(nn.Module):
        """Python-side state: the trace records the first call, later calls differ."""

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 2)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return torch.relu(self.fc(x)) if self.calls == 1 else self.fc(x) - 1.0

    with pytest.raises(gn.ModelImportError, match="predicts output 'fc' differently from the module"):
        gn.from_torch(Counting())

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 2)

        def forward(self, x):
            return self.fc(x) * 2

    with pytest.raises(gn.ModelImportError, match=r"function _operator.mul cannot be imported; supported calls"):
        gn.from_torch(Scaled())


class _Activated(nn.Module):
    """Linear -> a functional activation call -> Linear."""

    def __init__(self, activation):
        super().__init__()
        self.inner, self.head = nn.Linear(5, 6), nn.Linear(6, 3)
        self.activation = activation

    def forward(self, x):
        return self.head(self.activation(self.inner(x)))


F = nn.functional


@pytest.mark.parametrize("activation", [
    lambda z: F.leaky_relu(z, 0.2),
    lambda z: F.leaky_relu(z),
    lambda z: F.leaky_relu(z, negative_slope=0.3),
    lambda z: F.leaky_relu(z, 0.2, True),
    lambda z: F.elu(z, alpha=0.5),
    lambda z: F.gelu(z, approximate="tanh"),
    lambda z: F.softplus(z, beta=1, threshold=20),
    lambda z: F.softmax(z, dim=1),
    lambda z: F.softmax(z, -1),
    lambda z: torch.softmax(z, 1),
    lambda z: z.softmax(-1),
], ids=["leaky_relu(z, 0.2)", "leaky_relu(z)", "leaky_relu(z, negative_slope=0.3)", "leaky_relu(z, 0.2, True)",
        "elu(z, alpha=0.5)", "gelu(z, approximate)", "softplus(z, beta, threshold)", "F.softmax(z, dim=1)",
        "F.softmax(z, -1)", "torch.softmax(z, 1)", "z.softmax(-1)"])
def test_functional_activations_with_their_arguments(activation, x):
    torch.manual_seed(21)
    module = _Activated(activation)
    g = gn.from_torch(module)
    np.testing.assert_allclose(g.predict(x), _torch_predict(module, x), atol=TOL)


@pytest.mark.parametrize("activation, message", [
    (lambda z: F.softmax(z, dim=1, dtype=torch.float64), r"softmax has the argument dtype=torch.float64"),
    (lambda z: F.softmax(z, dim=0), r"softmax cannot be represented: dim=0"),
])
def test_activation_arguments_off_their_defaults_are_refused(activation, message):
    with pytest.raises(gn.ModelImportError, match=message):
        gn.from_torch(_Activated(activation))


class _TwoLayers(nn.Module):
    """Linear a (5 -> 6), then ``body``; ``act`` is an nn.ReLU(inplace=True)."""

    def __init__(self, body):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(5, 6), nn.Linear(6, 3), nn.Linear(6, 3)
        self.act = nn.ReLU(inplace=True)
        self.body = body

    def forward(self, x):
        return self.body(self, self.a(x))


def _changed_unused(change):
    """``change(m, h)`` changes h in place; its result is dropped and h read on."""
    def body(m, h):
        change(m, h)
        return m.b(h)
    return body


def _read_after(m, h):
    return m.b(F.relu(h, inplace=True)) + m.c(h)


def _view_read_after(m, h):
    view = torch.flatten(h, 1)
    return m.b(m.act(h)) + m.c(view)


def _returned_after(m, h):
    return m.b(F.elu(h, inplace=True)), h


def _read_before(m, h):
    before = m.c(h)
    return m.b(F.relu(h, inplace=True)) + before


@pytest.mark.parametrize("check", [True, False])
@pytest.mark.parametrize("body, message", [
    (_changed_unused(lambda m, h: F.relu(h, inplace=True)),
     (r"function torch.nn.functional.relu \(node 'relu'\) changes 'a' in place and its result is unused: .*; "
      r"use its result, preferably with inplace=False: h = torch.nn.functional.relu\(h, ...\)")),
    (_changed_unused(lambda m, h: F.leaky_relu(h, 0.2, True)),
     r"function torch.nn.functional.leaky_relu \(node 'leaky_relu'\) changes 'a' in place and its result is unused"),
    (_changed_unused(lambda m, h: h.relu_()),
     (r"method Tensor.relu_ \(node 'relu_'\) changes 'a' in place .*call relu instead and use its result: "
      r"h = h.relu\(\)")),
    (_changed_unused(lambda m, h: h.tanh_()), r"method Tensor.tanh_ \(node 'tanh_'\) changes 'a' in place"),
    (_changed_unused(lambda m, h: h.clamp_(0, 1)),
     r"method Tensor.clamp_ \(node 'clamp_'\) changes 'a' in place .*h = h.clamp\(...\)"),
    (_changed_unused(lambda m, h: torch.sigmoid_(h)),
     r"function torch.sigmoid_ \(node 'sigmoid_'\) changes 'a' in place .*call torch.sigmoid instead"),
    (_changed_unused(lambda m, h: m.act(h)),
     (r"module 'act' \(torch.nn.modules.activation.ReLU\) changes 'a' in place and its result is unused: .*"
      r"use the module's output: h = self.act\(h\)")),
    (_read_after,
     (r"function torch.nn.functional.relu \(node 'relu'\) changes 'a' in place, and module 'c' "
      r"\(torch.nn.modules.linear.Linear\) reads 'a' afterwards: .* pass inplace=False and use its result")),
    (_view_read_after,
     (r"module 'act' .* changes 'a' in place, and module 'c' .* reads 'flatten' \(a view of it\) afterwards: "
      r".*construct module 'act' with inplace=False")),
    (_returned_after,
     r"function torch.nn.functional.elu \(node 'elu'\) changes 'a' in place, and the output reads 'a' afterwards"),
], ids=["F.relu(inplace=True)", "F.leaky_relu(h, 0.2, True)", "relu_", "tanh_", "clamp_", "torch.sigmoid_",
        "ReLU(inplace=True)", "read after", "a view read after", "returned after"])
def test_in_place_calls_the_trace_cannot_follow_are_refused(body, message, check):
    """In torch the change shows in every later read of the tensor; the trace
    gives it to no one (an unused result) or only to the readers of the
    result: refused, checked or not, never imported without the change."""
    with pytest.raises(gn.ModelImportError, match=message):
        gn.from_torch(_TwoLayers(body), check=check)


@pytest.mark.parametrize("body", [
    lambda m, h: m.b(F.relu(h, inplace=True)),
    lambda m, h: m.b(m.act(h)),
    _read_before,
], ids=["F.relu(inplace=True)", "ReLU(inplace=True)", "read before"])
def test_in_place_calls_whose_result_is_used_import(body, x):
    torch.manual_seed(4)
    module = _TwoLayers(body)
    g = gn.from_torch(module)
    np.testing.assert_allclose(g.predict(x), _torch_predict(module, x), atol=TOL)


@pytest.mark.parametrize("check", [True, False])
def test_a_computation_whose_result_is_unused_is_refused(check):
    """Linear c's result is dropped: every node of a graph must feed an output."""
    def body(m, h):
        m.c(h)
        return m.b(h)

    with pytest.raises(gn.ModelImportError, match=r"torch module '_TwoLayers': node 'c' \(from module 'c' "
                                                  r"\(torch.nn.modules.linear.Linear\)\) reaches no output: the "
                                                  r"model has a computation whose result is unused"):
        gn.from_torch(_TwoLayers(body), check=check)


class _SharedEntry(nn.Module):
    """An output that is also a part of another, concatenated output."""

    def __init__(self, keys):
        super().__init__()
        self.lin = nn.Linear(5, 4)
        self.keys = keys

    def forward(self, x):
        h = self.lin(x)
        both = torch.cat([h, torch.tanh(h)], dim=1)
        if self.keys is None:
            return h, both
        return {self.keys[0]: h, self.keys[1]: both}


@pytest.mark.parametrize("keys", [("h", "both"), ("h", "lin"), ("both", "h")])
def test_a_dict_output_read_by_a_concatenated_output(keys, x):
    torch.manual_seed(22)
    module = _SharedEntry(keys)
    g = gn.from_torch(module)
    assert g.outputs == list(keys)
    with torch.no_grad():
        expected = module(torch.from_numpy(x))
    got = g.predict(x)
    for key in keys:
        np.testing.assert_allclose(got[key], expected[key].numpy(), atol=TOL)
    module.keys = None  # the same model returning a tuple imports alike
    as_tuple = gn.from_torch(module).predict(x)
    for key, name in zip(keys, gn.from_torch(module).outputs):
        np.testing.assert_array_equal(got[key], as_tuple[name])


def test_the_same_tensor_under_two_keys_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 4)

        def forward(self, x):
            h = self.lin(x)
            return {"a": h, "b": h}

    with pytest.raises(gn.ModelImportError, match="the same tensor is returned twice"):
        gn.from_torch(Twice())


@pytest.mark.parametrize("kwargs, message", [
    ({"input_name": 3}, "input_name must be None or a non-empty string, got 3"),
    ({"input_name": "a->b"}, "input_name must have no '->', no control characters and encode as UTF-8, got 'a->b'"),
    ({"name": 5}, "name must be None or a non-empty string, got 5"),
    ({"name": ""}, "name must be None or a non-empty string, got ''"),
    ({"name": "a\nb"}, "name must have no control characters and encode as UTF-8"),
    ({"dtype": "int32"}, "dtype must be None, 'float32' or 'float64', got 'int32'"),
    ({"seed": -1}, "seed must be None or an integer >= 0, got -1"),
    ({"check": "no"}, "check must be True or False, got 'no'"),
    ({"loss": 5}, "loss: loss must be a name, a config dict or a Loss, got int: 5"),
    ({"loss": {"dense": "nope"}}, "loss for output 'dense': unknown loss 'nope'"),
    ({"loss": {3: "mse"}}, "loss must name outputs by their names, got the key 3"),
])
def test_from_torch_checks_its_arguments(kwargs, message):
    """A wrong argument is named, before the module is traced, not the spec
    the import would build ('spec.synapses[0].src')."""
    with pytest.raises(gn.ModelImportError, match=f"^from_torch: {re.escape(message)}"):
        gn.from_torch(nn.Sequential(nn.Linear(3, 2)), **kwargs)


def test_a_dict_key_named_like_a_module_keeps_its_name(x):
    """The output takes its key; the node of the module called like it takes a
    fresh name, as when an input argument is named like a module. A key named
    like the input is refused, naming both."""

    class Keyed(nn.Module):
        def __init__(self, key):
            super().__init__()
            self.hidden, self.head, self.key = nn.Linear(5, 4), nn.Linear(4, 2), key

        def forward(self, x):
            return {self.key: torch.sigmoid(self.head(torch.relu(self.hidden(x))))}

    torch.manual_seed(24)
    module = Keyed("hidden")
    g = gn.from_torch(module)
    assert g.outputs == ["hidden"] and sorted(g.nodes) == ["hidden", "hidden_1", "x"]
    assert g.nodes["hidden_1"].activation.name == "relu" and g.nodes["hidden"].activation.name == "sigmoid"
    with torch.no_grad():
        expected = module(torch.from_numpy(x))["hidden"].numpy()
    np.testing.assert_allclose(g.predict(x), expected, atol=TOL)
    with pytest.raises(gn.ModelImportError, match=r"the output 'x', named by its dict key, has the name of "
                                                  r"input 'x', .* rename the dict key or the input"):
        gn.from_torch(Keyed("x"))


@pytest.mark.parametrize("dtype, graph_dtype", [(torch.float16, "float32"), (torch.bfloat16, "float32"),
                                                (torch.float64, "float64")])
def test_half_bfloat16_and_double_modules(dtype, graph_dtype, x):
    torch.manual_seed(23)
    module = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).to(dtype)
    g = gn.from_torch(module)
    assert g.dtype == np.dtype(graph_dtype)
    assert all(p.dtype == dtype for p in module.parameters())  # the module is left as it was
    widened = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).to(torch.float64)
    widened.load_state_dict({k: v.double() for k, v in module.state_dict().items()})
    exact = _torch_predict(widened, x.astype("float64"))
    np.testing.assert_allclose(g.predict(x), exact, atol=TOL)  # the source's weights, exactly
    with torch.no_grad():
        own = module(torch.from_numpy(x).to(dtype)).double().numpy()
    np.testing.assert_allclose(g.predict(x), own, atol=max(8 * torch.finfo(dtype).eps, 1e-12))  # and near its own


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float64, np.dtype("float32")])
def test_a_float32_module_imports_in_either_dtype(dtype, x):
    """Either dtype, named as Graph takes it: a numpy dtype too (it was refused)."""
    torch.manual_seed(24)
    module = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2))
    g = gn.from_torch(module, dtype=dtype)
    assert g.dtype == np.dtype(dtype)
    np.testing.assert_allclose(g.predict(x), _torch_predict(module, x), atol=TOL)


class _LogCosh(gn.losses.Loss):
    """A custom loss not registered: the importers take it as an object."""

    name = "log_cosh_unregistered"

    def value(self, y, a):
        return np.log(np.cosh(a - y)).mean(axis=1)

    def gradient(self, y, a):
        return np.tanh(a - y) / a.shape[1]


def test_a_custom_loss_object_is_taken_as_compile_takes_it(x):
    """``loss=LogCosh()`` works wherever a loss name does (the guide's
    custom-parts page), the importers too: the graph trains with that very
    object, and one that does not fit an output's activation is refused."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2))
    loss = _LogCosh()
    g = gn.from_torch(module, loss=loss)
    reference = gn.from_torch(module)
    reference.compile(loss=loss)
    assert g.nodes[g.outputs[0]].loss is loss
    y = np.zeros((len(x), 2), "float32")
    assert g.evaluate(x, y) == pytest.approx(reference.evaluate(x, y))
    assert g.fit(x, y, epochs=1, verbose=0).history == reference.fit(x, y, epochs=1, verbose=0).history
    assert gn.from_torch(module, loss={"dense_1": loss}).nodes["dense_1"].loss is loss
    with pytest.raises(gn.ModelImportError, match="output 'dense': loss 'categorical_crossentropy' needs "
                                                  "activation 'softmax', got 'sigmoid'"):
        gn.from_torch(nn.Sequential(nn.Linear(5, 2), nn.Sigmoid()), loss="categorical_crossentropy")
