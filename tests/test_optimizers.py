"""Optimizer steps against hand-written float64 formulas, clipping, state."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import graphnet as gn
from graphnet import GraphError, optimizers


def _run(opt, params, grads_seq):
    """Apply a sequence of gradients the way the trainer does."""
    opt.bind((("w", params.size),), params.dtype)
    params = params.copy()
    for g in grads_seq:
        params -= opt.step(params, g.copy())
    return params


@pytest.fixture
def problem(rng):
    params = rng.normal(size=7)
    grads = [rng.normal(size=7) for _ in range(4)]
    return params, grads


def test_sgd(problem):
    p, gs = problem
    expected = p - 0.1 * sum(gs)
    np.testing.assert_allclose(_run(optimizers.SGD(lr=0.1), p, gs), expected, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum(problem, nesterov):
    p, gs = problem
    lr, mu = 0.05, 0.9
    v, w = np.zeros_like(p), p.copy()
    for g in gs:  # Keras's form: v <- mu v - lr g; w <- w + v (+ mu v - lr g for Nesterov)
        v = mu * v - lr * g
        w = w + (mu * v - lr * g if nesterov else v)
    result = _run(optimizers.SGD(lr=lr, momentum=mu, nesterov=nesterov), p, gs)
    np.testing.assert_allclose(result, w, rtol=1e-12)


def test_rmsprop(problem):
    p, gs = problem
    lr, rho, eps = 0.01, 0.9, 1e-7
    s, w = np.zeros_like(p), p.copy()
    for g in gs:
        s = rho * s + (1 - rho) * g * g
        w = w - lr * g / (np.sqrt(s) + eps)
    np.testing.assert_allclose(_run(optimizers.RMSprop(lr=lr), p, gs), w, rtol=1e-12)


def _adam_reference(p, gs, lr, b1, b2, eps, wd=0.0):
    m, v, w = np.zeros_like(p), np.zeros_like(p), p.copy()
    for t, g in enumerate(gs, start=1):
        w = w - lr * wd * w  # decoupled decay (AdamW), before the Adam step
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


def test_adam(problem):
    p, gs = problem
    expected = _adam_reference(p, gs, 0.01, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(_run(optimizers.Adam(lr=0.01), p, gs), expected, rtol=1e-10)


def test_adamw(problem):
    p, gs = problem
    expected = _adam_reference(p, gs, 0.01, 0.9, 0.999, 1e-8, wd=0.1)
    result = _run(optimizers.AdamW(lr=0.01, weight_decay=0.1), p, gs)
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_clipnorm_scales_the_global_norm(rng):
    g = rng.normal(size=10) * 100
    opt = optimizers.SGD(lr=1.0, clipnorm=1.0)
    opt.bind((("w", 10),), np.float64)
    update = opt.step(np.zeros(10), g.copy())
    assert np.linalg.norm(update) == pytest.approx(1.0)
    np.testing.assert_allclose(update / np.linalg.norm(update), g / np.linalg.norm(g))


def test_state_follows_a_new_layout():
    opt = optimizers.Adam()
    opt.bind((("a", 2), ("b", 3)), np.float64)
    opt.step(np.zeros(5), np.arange(5.0))
    m_b = opt.slots["m"][2:].copy()
    opt.bind((("b", 3), ("c", 4)), np.float64)  # 'a' removed, 'c' added
    np.testing.assert_array_equal(opt.slots["m"][:3], m_b)
    np.testing.assert_array_equal(opt.slots["m"][3:], 0)


def test_subnormal_moments_are_flushed():
    opt = optimizers.Adam()
    opt.bind((("w", 3),), np.float32)
    opt.slots["v"][:] = np.float32(1e-38)  # float32 subnormal territory
    for _ in range(64):
        opt.step(np.zeros(3, np.float32), np.zeros(3, np.float32))
    assert np.all(opt.slots["v"] == 0)


def test_config_and_state_round_trip(problem):
    p, gs = problem
    opt = optimizers.get({"name": "adam", "lr": 0.02, "beta1": 0.8})
    _run(opt, p, gs[:2])
    clone = optimizers.get(opt.get_config())
    clone.set_state(opt.get_state(), np.float64)
    a = opt.step(p, gs[2].copy()).copy()
    b = clone.step(p, gs[2].copy())
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", [optimizers.SGD(lr=0.0), optimizers.SGD(lr=0, momentum=0.9, nesterov=True),
                                       optimizers.Adam(learning_rate=0.0), optimizers.AdamW(lr=0.0)],
                         ids=["sgd", "nesterov", "adam", "adamw"])
def test_a_learning_rate_of_zero_trains_nothing_and_measures(optimizer):
    # As in Keras and PyTorch: a fit with lr=0 only measures (its epoch metrics
    # are those of the unchanged weights).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 4))
    y = (x[:, :1] > 0).astype(float)
    g = gn.Graph(seed=0)
    g.add_input("x", 4)
    g.add_hidden("h", 6, activation="relu")
    g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    g.connect("x", "h")
    g.connect("h", "y")
    before = g.get_weights()
    measured = g.evaluate(x, y, metrics=["auc"])
    history = g.fit(x, y, epochs=2, batch_size=8, optimizer=optimizer, metrics=["auc"], verbose=0)
    for key, value in g.get_weights().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    assert history.history["auc"] == pytest.approx([measured["auc"]] * 2)


def test_registry_and_errors():
    assert isinstance(optimizers.get("momentum"), optimizers.SGD)
    assert optimizers.get("momentum").momentum == 0.9
    with pytest.raises(GraphError, match=r"unknown optimizer 'adagrad'; known: \['adam'"):
        optimizers.get("adagrad")
    with pytest.raises(GraphError, match="lr must be a finite number >= 0, got -1"):
        optimizers.Adam(lr=-1)
    with pytest.raises(GraphError, match="beta1 must be in"):
        optimizers.Adam(beta1=1.0)
    with pytest.raises(GraphError, match="nesterov=True needs a momentum"):
        optimizers.SGD(nesterov=True)
    with pytest.raises(GraphError, match="bind"):
        optimizers.Adam().step(np.zeros(2), np.zeros(2))


def test_a_parameter_that_joins_later_has_its_own_adam_step_count():
    """PyTorch keeps a step count per parameter; so does graphnet, per parameter
    key: a parameter added after many updates takes a fresh Adam's first step
    (about lr), not the ~3 x lr an uncorrected moment would give."""
    opt = optimizers.Adam(lr=0.01)
    opt.bind((("a", 2),), np.float64)
    for _ in range(50):
        opt.step(np.zeros(2), np.ones(2))
    opt.bind((("a", 2), ("b", 3)), np.float64)  # 'b' joins at iteration 50
    assert opt.steps("a") == 50 and opt.steps("b") == 0
    g = np.array([0.3, 0.3, 0.5, -2.0, 1e-3])
    update = opt.step(np.zeros(5), g.copy())
    fresh = optimizers.Adam(lr=0.01)
    fresh.bind((("b", 3),), np.float64)
    np.testing.assert_allclose(update[2:], fresh.step(np.zeros(3), g[2:].copy()), rtol=1e-12)
    assert opt.steps("b") == 1
    state = opt.get_state()
    assert state["born"] == {"b": 50}
    clone = optimizers.Adam(lr=0.01)
    clone.set_state(state, np.float64)
    np.testing.assert_array_equal(clone.step(np.zeros(5), g.copy()), opt.step(np.zeros(5), g.copy()))


def test_born_counts_survive_a_model_file(tmp_path, rng):
    import graphnet as gn

    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 1)
    g.connect("x", "y")
    x, y = rng.normal(size=(8, 3)), rng.normal(size=8)
    g.fit(x, y, epochs=3, batch_size=4, verbose=0)
    g.add_hidden("h", 2, activation="linear")
    g.connect("x", "h")
    g.connect("h", "y")
    g.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert g.optimizer.steps("h->y.weight") == 2 and g.optimizer.steps("x->y.weight") == 8
    back = gn.load(g.save(tmp_path / "m.gnet"))
    assert back.optimizer.steps("h->y.weight") == 2
    a, b = g.train_step(x, y), back.train_step(x, y)
    assert a == b and all(np.array_equal(v, back.get_weights()[k]) for k, v in g.get_weights().items())


def test_adam_takes_keras_names_for_its_hyperparameters():
    keras_style = gn.optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    assert (keras_style.lr, keras_style.beta1, keras_style.beta2, keras_style.eps) == (0.01, 0.8, 0.99, 1e-7)
    assert gn.optimizers.AdamW(beta_1=0.5).beta1 == 0.5
    pairs = [("lr", "learning_rate", 0.01), ("beta1", "beta_1", 0.9), ("beta2", "beta_2", 0.999),
             ("eps", "epsilon", 1e-8)]
    for cls in (gn.optimizers.Adam, gn.optimizers.AdamW):
        for ours, theirs, value in pairs:  # both names, whatever the values (the default's too)
            for other in (value, 0.5 * value):
                with pytest.raises(GraphError, match=rf"pass {ours} or {theirs} \(the same thing\), not both"):
                    cls(**{ours: value, theirs: other})
    for cls in (gn.optimizers.SGD, gn.optimizers.Momentum, gn.optimizers.RMSprop):
        with pytest.raises(GraphError, match="pass lr or learning_rate"):
            cls(lr=0.01, learning_rate=0.01)
    assert gn.optimizers.Adam().get_config() == gn.optimizers.Adam(0.001, 0.9, 0.999, 1e-8).get_config()
    for cls in (gn.optimizers.Adam, gn.optimizers.AdamW):  # SPEC's signature: the defaults are shown
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
        assert (defaults["beta1"], defaults["beta2"], defaults["eps"]) == (0.9, 0.999, 1e-8)
        assert type(cls(beta_1=0.8).beta1) is float and type(cls().beta1) is float
    with pytest.raises(GraphError, match="beta1 must be in"):
        gn.optimizers.Adam(beta_1=1.5)


# -- state follows parameters, not keys ---------------------------------------
def _heads_graph():
    """Outputs y and z, each fed by x alone: z's parameters can be made anew
    while y's gradients stay the same."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 2)
    g.add_output("z", 2)
    g.connect("x", "y")
    g.connect("x", "z")
    return g


def _two_heads(opt):
    """:func:`_heads_graph` trained four steps with ``opt``."""
    g = _heads_graph()
    g.fit(*_heads_data(), epochs=2, batch_size=4, optimizer=opt, verbose=0)
    return g


def _heads_data():
    rng = np.random.default_rng(0)
    return rng.random((8, 3)), {"y": rng.random((8, 2)), "z": rng.random((8, 2))}


def _remake(g, how):
    if how == "remove":
        g.remove("z")
        g.add_output("z", 2)
    else:
        g.disconnect("x", "z")
    g.connect("x", "z")


def _first_step(opt, grad):
    """What a fresh ``opt`` (same hyperparameters) does to a parameter on its first step."""
    fresh = optimizers.get(opt.get_config())
    fresh.bind((("p", grad.size),), np.float64)
    return fresh.step(np.zeros(grad.size), grad.ravel().copy()).reshape(grad.shape)


@pytest.mark.parametrize("how", ["remove", "disconnect"])
@pytest.mark.parametrize("opt", [optimizers.SGD(lr=0.1, momentum=0.9), optimizers.Adam(lr=0.1)],
                         ids=["momentum", "adam"])
def test_a_parameter_made_anew_under_an_old_key_starts_from_zero_state(opt, how):
    """SPEC 10: training never goes on updating weights the graph no longer
    uses. A synapse (or node) removed and made again under the same key and
    size is a new parameter: its first step is a fresh optimizer's, with a
    step count of its own; it does not inherit the old one's velocity or
    moments."""
    import copy

    x, y = _heads_data()
    g = _two_heads(copy.deepcopy(opt))
    _remake(g, how)
    new = ["x->z.weight"] + (["z.bias"] if how == "remove" else [])
    before = g.get_weights()
    _, grads = g.gradients(x, y)
    g.train_step(x, y)
    after = g.get_weights()
    for key in new:
        np.testing.assert_allclose(after[key], before[key] - _first_step(g.optimizer, grads[key]),
                                   rtol=0, atol=1e-15, err_msg=key)
        assert g.optimizer.steps(key) == 1
    assert g.optimizer.steps("x->y.weight") == g.optimizer.steps("y.bias") == 5


@pytest.mark.parametrize("opt", [optimizers.SGD(lr=0.1, momentum=0.9), optimizers.Adam(lr=0.1)],
                         ids=["momentum", "adam"])
def test_the_parameters_an_edit_keeps_keep_their_state_bit_for_bit(opt):
    import copy

    x, y = _heads_data()
    edited, twin = _two_heads(copy.deepcopy(opt)), _two_heads(copy.deepcopy(opt))
    _remake(edited, "remove")
    edited.train_step(x, y)
    twin.train_step(x, y)
    a, b = edited.optimizer.get_state(), twin.optimizer.get_state()
    for slot in edited.optimizer.slot_names:
        assert np.array_equal(_slice(a, slot, "x->y.weight"), _slice(b, slot, "x->y.weight"))
        assert np.array_equal(_slice(a, slot, "y.bias"), _slice(b, slot, "y.bias"))
    wa, wb = edited.get_weights(), twin.get_weights()
    assert np.array_equal(wa["x->y.weight"], wb["x->y.weight"]) and np.array_equal(wa["y.bias"], wb["y.bias"])


def _slice(state, slot, key):
    start = 0
    for k, n in state["layout"]:
        if k == key:
            return state["slots"][slot][start : start + n]
        start += n
    raise KeyError(key)


def test_a_copy_keeps_its_own_state_and_starts_its_new_parameters_afresh():
    import copy

    x, y = _heads_data()
    g = _two_heads(optimizers.Adam(lr=0.1))
    clone = copy.deepcopy(g)
    assert g.train_step(x, y) == clone.train_step(x, y)  # the copy trains on with the same state
    _remake(clone, "remove")
    clone.train_step(x, y)
    assert clone.optimizer.steps("z.bias") == 1 and clone.optimizer.steps("y.bias") == 6
    assert g.optimizer.steps("z.bias") == 5


def test_a_model_file_keeps_no_state_for_a_parameter_made_anew(tmp_path):
    """Saved after the edit and before any step: the new parameter's state is
    not the old one's, in the file or in the graph loaded from it; an edit
    made after loading starts afresh too."""
    g = _two_heads(optimizers.Adam(lr=0.1))
    _remake(g, "remove")
    back = gn.load(g.save(tmp_path / "m.gnet"))
    keys = [key for key, _ in back.optimizer.get_state()["layout"]]
    assert keys == ["x->y.weight", "y.bias"]
    x, y = _heads_data()
    assert g.train_step(x, y) == back.train_step(x, y)
    assert back.optimizer.steps("z.bias") == 1
    again = gn.load(tmp_path / "m.gnet")
    again.disconnect("x", "y")
    again.connect("x", "y")
    again.train_step(x, y)
    assert again.optimizer.steps("x->y.weight") == 1 and again.optimizer.steps("y.bias") == 5


def test_an_optimizer_copied_to_another_graph_takes_its_state_by_key():
    """What the one-graph refusal advises (copy.deepcopy(optimizer)): a graph
    built the same way starts from the same state."""
    import copy

    x, y = _heads_data()
    g = _two_heads(optimizers.Adam(lr=0.1))
    other = _heads_graph()
    other.set_weights(g.get_weights())
    other.optimizer = copy.deepcopy(g.optimizer)
    assert other.train_step(x, y) == g.train_step(x, y)
    assert all(np.array_equal(v, other.get_weights()[k]) for k, v in g.get_weights().items())


def test_an_edit_from_a_callback_starts_the_new_synapse_afresh():
    def remake(epoch, logs):
        if epoch == 0:
            _remake(g, "disconnect")

    x, y = _heads_data()
    g = _two_heads(optimizers.Adam(lr=0.1))
    g.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[gn.callbacks.LambdaCallback(on_epoch_end=remake)])
    assert g.optimizer.steps("x->z.weight") == 2 and g.optimizer.steps("x->y.weight") == 8
