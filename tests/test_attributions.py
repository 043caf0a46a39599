"""Attributions against Captum and torch's autograd on the same network, and completeness."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn
from graphnet import attributions as attributions_module
from graphnet.attributions import Attributions

torch = pytest.importorskip("torch")
F = torch.nn.functional

ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "gelu": F.gelu,  # exact (erf), graphnet's default
    "softmax": lambda z: torch.softmax(z, dim=1),
}


def torch_function(g: gn.Graph, output: str):
    """``output``'s activation as a torch function of the inputs (in ``g.inputs``
    order), with ``g``'s weights: the same network, built independently."""
    weights = {k: torch.tensor(v, dtype=torch.float64) for k, v in g.get_weights().items()}

    def f(*xs):
        acts = dict(zip(g.inputs, xs))
        for name in g.topological_order:
            if name not in acts:
                z = weights[f"{name}.bias"] + sum(acts[s.src] @ weights[s.key] for s in g.incoming(name))
                acts[name] = ACTIVATIONS[g.nodes[name].activation.name](z)
        return acts[output]

    return f


def tensors(g, x):
    return tuple(torch.tensor(x[n], dtype=torch.float64) for n in g.inputs)


def smooth_dag() -> gn.Graph:
    """Two inputs, a skip connection from an input to the output, smooth activations."""
    g = gn.Graph(name="smooth", seed=3, dtype="float64")
    g.add_input("a", 4)
    g.add_input("b", 3)
    g.add_hidden("h1", 6, activation="tanh")
    g.add_hidden("h2", 5, activation="tanh")
    g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect("a", "h1")
    g.connect(["h1", "b"], "h2")
    g.connect(["h2", "a"], "y")  # a skips to the output
    return g


# ------------------------------------------------------------------ Captum
@pytest.fixture
def captum(monkeypatch):
    """Captum's IntegratedGradients, with graphnet's quadrature rounded to
    float32 where Captum rounds its own: the weights always
    (``torch.tensor(step_sizes).float()`` in ``IntegratedGradients``), the
    midpoint rule's points too (``torch.linspace`` in float32). Then the two agree to
    float64 rounding; unrounded, they differ by that rounding (about 4e-8
    relative)."""
    captum_attr = pytest.importorskip("captum.attr")
    for name, rule in list(attributions_module.RULES.items()):
        def rounded(steps, rule=rule, name=name):
            alphas, weights = rule(steps)
            if name == "riemann_middle":  # Captum's points, as Captum makes them
                alphas = torch.linspace(1 / (2 * steps), 1 - 1 / (2 * steps), steps).double().numpy()
            return alphas, weights.astype(np.float32).astype(np.float64)

        monkeypatch.setitem(attributions_module.RULES, name, rounded)
    return captum_attr


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_middle"])
@pytest.mark.parametrize("output", ["aux", "main"])
def test_integrated_gradients_equal_captums(rule, output, rng, captum):
    g = build_dag()
    x, _ = dag_data(rng, 9)
    target = None if output == "aux" else rng.integers(0, 2, size=9)
    report = g.attributions(x, output=output, target=target, steps=32, rule=rule)
    expected_target = report.target if target is None else target
    if output == "aux":  # the default: the predicted class per row
        np.testing.assert_array_equal(expected_target, g.predict(x)["aux"].argmax(axis=1))
    ig = captum.IntegratedGradients(torch_function(g, output))
    theirs = ig.attribute(tensors(g, x), baselines=tuple(torch.zeros_like(t) for t in tensors(g, x)),
                          target=torch.tensor(expected_target), n_steps=32, method=rule)
    for name, attribution in zip(g.inputs, theirs):
        np.testing.assert_allclose(report[name], attribution.numpy(), rtol=0, atol=1e-15)


def test_integrated_gradients_equal_captums_with_a_baseline_and_small_batches(rng, captum):
    g = smooth_dag()
    x = {"a": rng.normal(size=(7, 4)), "b": rng.normal(size=(7, 3))}
    base = {"a": rng.normal(size=4), "b": 0.5}
    report = g.attributions(x, baseline=base, target=2, steps=20, batch_size=30)
    ig = captum.IntegratedGradients(torch_function(g, "y"))
    theirs = ig.attribute(tensors(g, x), baselines=(torch.tensor(base["a"])[None], 0.5), target=2, n_steps=20)
    for name, attribution in zip(g.inputs, theirs):
        np.testing.assert_allclose(report[name], attribution.numpy(), rtol=0, atol=1e-12)


# ------------------------------------------------------------ completeness
def test_gauss_legendre_is_complete_on_a_smooth_network(rng):
    g = smooth_dag()
    x = {"a": rng.normal(size=(20, 4)), "b": rng.normal(size=(20, 3))}
    report = g.attributions(x, steps=50)
    f = torch_function(g, "y")
    probs = f(*tensors(g, x)).numpy()
    zero = f(torch.zeros(1, 4, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64)).numpy()
    rows = np.arange(20)
    np.testing.assert_allclose(report.f_x, probs[rows, report.target], rtol=0, atol=1e-14)
    np.testing.assert_allclose(report.f_baseline, zero[0, report.target], rtol=0, atol=1e-14)
    totals = sum(report.per_node.values())
    np.testing.assert_allclose(totals, report.f_x - report.f_baseline, rtol=0, atol=1e-12)
    assert report.completeness_error < 1e-12


def test_completeness_improves_with_steps_where_the_network_has_kinks(rng):
    """build_dag's elu has a kink in its second derivative: convergence is
    algebraic, still small at 50 steps and smaller at 200."""
    g = build_dag()
    x, _ = dag_data(rng, 10)
    errors = [g.attributions(x, output="main", target=0, steps=s).completeness_error for s in (8, 50, 200)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] < 1e-6


def test_midpoint_rule_error_falls_as_one_over_steps_squared(rng):
    g = smooth_dag()
    x = {"a": rng.normal(size=(5, 4)), "b": rng.normal(size=(5, 3))}
    coarse = g.attributions(x, steps=10, rule="riemann_middle").completeness_error
    fine = g.attributions(x, steps=40, rule="riemann_middle").completeness_error
    assert 8 < coarse / fine < 24  # 16 for an exact 1/steps² law


# -------------------------------------------------------- gradient x input
@pytest.mark.parametrize("output, target", [("aux", 1), ("main", 0)])
def test_gradient_x_input_equals_autograd(output, target, rng):
    g = build_dag()
    x, _ = dag_data(rng, 6)
    report = g.attributions(x, method="gradient_x_input", output=output, target=target)
    inputs = [t.requires_grad_() for t in tensors(g, x)]
    torch_function(g, output)(*inputs)[:, target].sum().backward()
    for name, t in zip(g.inputs, inputs):
        np.testing.assert_allclose(report[name], (t * t.grad).detach().numpy(), rtol=0, atol=1e-14)
    assert report.steps == 1 and report.rule is None


def test_on_a_linear_graph_every_method_is_exact(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 4)
    g.add_output("y", 2)
    g.connect("x", "y")
    x = rng.normal(size=(5, 4))
    w = g.get_weights()["x->y.weight"]
    for method in ("integrated_gradients", "gradient_x_input"):
        report = g.attributions(x, method=method, target=1, steps=3, baseline=1.0)
        np.testing.assert_allclose(report["x"], (x - 1.0) * w[:, 1], rtol=1e-13)
        assert report.completeness_error < 1e-13


# ------------------------------------------------------------- the report
def test_report_views_agree(rng):
    g = build_dag()
    x, _ = dag_data(rng, 8)
    report = g.attributions(x, output="aux")
    assert isinstance(report, Attributions) and report.rows == 8 and report.inputs == ["a", "b"]
    assert report.targets_chosen == "predicted class" and report.probability
    for name in g.inputs:
        values = report[name]
        assert values.shape == (8, g.nodes[name].size)
        np.testing.assert_allclose(report.per_node[name], values.sum(axis=1))
        np.testing.assert_allclose(report.mean[name], values.mean(axis=0))
        np.testing.assert_allclose(report.mean_abs[name], np.abs(values).mean(axis=0))
    assert sum(report.shares.values()) == pytest.approx(1.0)
    np.testing.assert_allclose(report.delta, sum(report.per_node.values()) - (report.f_x - report.f_baseline))
    text = report.text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "Integrated gradients (Gauss-Legendre, 50 steps) of aux's probability" in text
    assert "predicted class" in text and "completeness" in text
    assert "a " in text and "b " in text
    assert "completeness error" in repr(report)
    with pytest.raises(gn.NotFoundError, match=r"no input 'c'; inputs: \['a', 'b'\]"):
        report["c"]


def test_a_one_unit_output_defaults_to_its_unit_and_a_hidden_node_can_be_explained(rng):
    g = build_dag()
    x, _ = dag_data(rng, 4)
    one = gn.Graph(seed=0, dtype="float64")
    one.add_input("x", 3)
    one.add_output("p", 1, activation="sigmoid", loss="binary_crossentropy")
    one.connect("x", "p")
    report = one.attributions(rng.normal(size=(4, 3)))
    assert report.targets_chosen == "the only unit" and (report.target == 0).all()
    hidden = g.attributions(x, output="h2", target=3)
    assert (hidden["b"] != 0).any() and not hidden.probability
    assert hidden.completeness_error < 1e-6


def test_an_input_that_does_not_reach_the_output_gets_zeros(rng):
    g = build_dag()
    x, _ = dag_data(rng, 4)
    report = g.attributions(x, output="h1", target=0)  # h1 reads only a
    assert not report["b"].any() and report["a"].any()


def test_attributions_change_nothing(rng):
    g = build_dag(dtype="float32")
    x, y = dag_data(rng, 16)
    g.fit(x, y, epochs=1, batch_size=8, verbose=0)
    before, version, predicted = g.get_weights(), g.version, g.predict(x)
    report = g.attributions(x, output="main", target=1)
    after = g.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before) and g.version == version
    for name, value in g.predict(x).items():
        np.testing.assert_array_equal(value, predicted[name])
    assert report.completeness_error < 1e-4  # float32


def test_baselines_in_every_accepted_form_agree(rng):
    g = build_dag()
    x, _ = dag_data(rng, 5)
    rows = {"a": np.full((5, 5), 0.3), "b": np.full((5, 3), 0.3)}
    expected = g.attributions(x, output="main", target=0, baseline=rows)
    for baseline in (0.3, {"a": 0.3, "b": np.full(3, 0.3)}):
        got = g.attributions(x, output="main", target=0, baseline=baseline)
        for name in g.inputs:
            np.testing.assert_array_equal(got[name], expected[name])
    assert not expected.baseline_zero and "baseline given" in expected.describe()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs, error, match", [
    ({}, gn.GraphError, r"2 outputs \['aux', 'main'\]: name the one to explain with output="),
    ({"output": "zz"}, gn.NotFoundError, r"output must be the name of an output or hidden node, got 'zz'"),
    ({"output": "a"}, gn.GraphError, r"'a' is an input"),
    ({"output": "main"}, gn.GraphError, r"'main' has 2 units: pass target="),
    ({"output": "main", "target": 2}, gn.GraphError, r"integer in \[0, 2\).*, got target 2$"),
    ({"output": "main", "target": np.array([0, 3, 1, 0])}, gn.GraphError, r", got targets from 0 to 3$"),
    ({"output": "main", "target": [0, 1]}, gn.GraphError, r"array of 4 of them.*shape \(2,\)"),
    ({"output": "main", "target": 0.5}, gn.GraphError, r"target for 'main' must be"),
    ({"output": "aux", "method": "shap"}, gn.GraphError, r"method must be one of \['gradient_x_input', "),
    ({"output": "aux", "rule": "trapezoid"}, gn.GraphError, r"rule must be one of \['gausslegendre'"),
    ({"output": "aux", "steps": 0}, gn.GraphError, r"steps must be a positive integer, got 0"),
    ({"output": "aux", "steps": 10**9}, gn.GraphError, r"steps must be at most 1,000, got 1,000,000,000"),
    ({"output": "aux", "baseline": {"a": 0.0}}, gn.ShapeError,
     r"^baseline data must be keyed by the graph's input names \['a', 'b'\]: missing inputs \['b'\]$"),
    ({"output": "aux", "baseline": {"a": np.zeros(4), "b": 0.0}}, gn.ShapeError,
     r"baseline 'a': expected a number, shape \(5,\) or \(4, 5\), got \(4,\)"),
    ({"output": "aux", "baseline": {"a": np.nan, "b": 0.0}}, gn.ShapeError, r"baseline 'a' contains NaN"),
])
def test_bad_arguments_name_what_is_wrong(kwargs, error, match, rng):
    g = build_dag()
    x, _ = dag_data(rng, 4)
    with pytest.raises(error, match=match):
        g.attributions(x, **kwargs)


def test_bad_data_is_a_shape_error(rng):
    g = build_dag()
    with pytest.raises(gn.ShapeError, match="no rows"):
        g.attributions({"a": np.zeros((0, 5)), "b": np.zeros((0, 3))}, output="aux")
    with pytest.raises(gn.ShapeError, match=r"input 'b': expected shape \(n, 3\)"):
        g.attributions({"a": np.zeros((2, 5)), "b": np.zeros((2, 4))}, output="aux")


# ----------------------------------------------------------------- diagram
def test_the_diagram_shows_each_inputs_share_and_the_explained_unit(rng, tmp_path):
    import re
    import shutil

    from graphnet.render import NODE_STYLES

    g = build_dag()
    x, _ = dag_data(rng, 12)
    report = g.attributions(x, output="main", target=1)
    source = g.to_dot(attributions=report).source
    lines = {m.group(1): m.group(0) for m in re.finditer(r'^\t"(\w+)" \[label=.*$', source, re.M)}
    for name in g.inputs:
        assert f"attribution {round(100 * report.shares[name])}%" in lines[name]
        fill = re.search(r'fillcolor="([^"]+)"', lines[name]).group(1)
        assert fill != NODE_STYLES["input"].fillcolor
    bigger = max(g.inputs, key=report.shares.get)  # the one that mattered more is darker
    darkness = {n: sum(int(re.search(r'fillcolor="#(\w+)"', lines[n]).group(1)[i:i + 2], 16) for i in (0, 2, 4))
                for n in g.inputs}
    assert darkness[bigger] == min(darkness.values())
    assert "<b>explained</b>: unit 1" in lines["main"] and "explained" not in lines["aux"]
    assert "<b>Attributions</b>: Integrated gradients (Gauss-Legendre, 50 steps) of main" in source
    if shutil.which("dot"):
        stats = g.statistics(x)
        assert g.render(tmp_path / "both.svg", stats=stats, attributions=report).stat().st_size > 0
    with pytest.raises(gn.RenderError, match="attributions must be what graph.attributions"):
        g.to_dot(attributions={"a": 1})
    other = gn.Graph(name="other", seed=0)
    other.add_input("z", 2)
    other.add_output("y", 1)
    other.connect("z", "y")
    with pytest.raises(gn.RenderError, match=r"describe graph 'dag', whose nodes \['a', 'b', 'main'\]"):
        other.to_dot(attributions=report)


@pytest.mark.parametrize("missing", ["error", "indicator"])
def test_a_baseline_is_in_the_units_of_the_data_for_an_input_that_normalizes(rng, missing, captum):
    """x is given raw and normalized inside the graph; so is the baseline:
    f(baseline) is predict's, each row sums to f(x) - f(baseline), and the
    attributions are Captum's on the network with its normalization inside."""
    x = {"a": rng.normal(size=(6, 3)) * 4 + 3}
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("a", 3, normalize=True, missing=missing)
    g.add_output("r", 1, activation="sigmoid", loss="binary_crossentropy")
    g.connect("a", "r")
    g.adapt(x)
    for baseline in (None, np.array([1.0, -2.0, 0.5])):
        raw = np.zeros(3) if baseline is None else baseline
        report = g.attributions(x, baseline=None if baseline is None else {"a": baseline}, steps=16)
        np.testing.assert_allclose(report.f_baseline, g.predict(raw[None])[0, 0], rtol=0, atol=1e-15)
        np.testing.assert_allclose(report["a"].sum(axis=1), g.predict(x)[:, 0] - g.predict(raw[None])[0, 0],
                                   rtol=0, atol=1e-6)
        node, weights = g.nodes["a"], g.get_weights()
        w = torch.tensor(weights["a->r.weight"][:3])  # the indicator columns see no NaN: they stay 0

        def f(t):
            return torch.sigmoid(((t - torch.tensor(node.mean)) / torch.tensor(node.std)) @ w
                                 + torch.tensor(weights["r.bias"]))

        theirs = captum.IntegratedGradients(f).attribute(
            torch.tensor(x["a"]), baselines=torch.tensor(raw)[None], target=0, n_steps=16)
        np.testing.assert_allclose(report["a"][:, :3], theirs.numpy(), rtol=0, atol=1e-12)


def test_attributions_hold_their_inputs_as_a_mapping(rng):
    """`in` and iteration give input names (they fell back to report[0] and
    raised NotFoundError)."""
    g = build_dag()
    x, _ = dag_data(rng, 4)
    report = g.attributions(x, output="main", target=0)
    assert list(report) == report.inputs and all(name in report for name in g.inputs)
    assert "nope" not in report and 0 not in report
    with pytest.raises(KeyError, match="no input"):
        report[["a"]]
