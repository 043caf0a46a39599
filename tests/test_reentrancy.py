"""The user's code that graphnet calls (callbacks, metrics, losses,
activations, schedules) doing things with the graph being trained, or
giving back what the protocol does not want."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import regression_data

import graphnet as gn
from graphnet import GraphError


@pytest.fixture
def data(rng):
    return regression_data(rng)


def model(dtype="float32", dropout=0.0):
    return gn.Sequential([gn.Input(3), gn.Dense(5, activation="tanh", dropout=dropout), gn.Dense(1)], seed=0,
                         dtype=dtype)


class OnEpochEnd(gn.callbacks.Callback):
    def __init__(self, action):
        super().__init__()
        self.action, self.errors = action, []

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            try:
                self.action(self.graph)
            except GraphError as error:
                self.errors.append(str(error))


def _add_output(g):
    g.add_output("extra", 1)


@pytest.mark.parametrize("edit, what", [
    (_add_output, "adding the output 'extra'"),
    (lambda g: g.add_input("more", 2), "adding the input 'more'"),
    (lambda g: g.remove("dense_1"), "removing the output 'dense_1'"),
    (lambda g: g.add(gn.Dense(2)), "turning the output 'dense_1' into a hidden node"),
    (lambda g: g.astype("float64"), "astype('float64')"),
])
def test_an_edit_the_running_fit_could_not_follow_is_refused_when_made(data, edit, what):
    x, y = data
    g = model()
    watch = OnEpochEnd(edit)
    before = g.to_dict()
    history = g.fit(x, y, epochs=2, verbose=0, callbacks=[watch])
    assert watch.errors == [f"graph 'sequential' is training: {what} is refused until fit returns (the running "
                            "fit could not follow it: its data would no longer fit); make it between fit calls"]
    assert history.epoch == [0, 1] and g.to_dict()["nodes"] == before["nodes"] and g.dtype == np.float32
    edit(g)  # between fit calls it is an ordinary edit


def test_edits_the_fit_follows_are_still_taken_mid_fit(data):
    x, y = data
    g = model()
    watch = OnEpochEnd(lambda g: g.widen("dense", 7))
    g.fit(x, y, epochs=2, verbose=0, callbacks=[watch])
    assert watch.errors == [] and g["dense"].size == 7


def test_an_optimizer_given_mid_fit_trains_from_the_next_batch(data):
    x, y = data
    g = model()
    frozen = gn.optimizers.SGD(lr=0.0)
    seen = []

    class Swap(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.graph.compile(optimizer=frozen)
            seen.append(self.graph.get_weights())

    g.fit(x, y, epochs=3, verbose=0, optimizer="adam", callbacks=[Swap()])
    assert g.optimizer is frozen and frozen.iterations > 0
    for key in seen[0]:
        np.testing.assert_array_equal(seen[0][key], seen[2][key])  # a rate of 0 moved nothing after epoch 0


class Counting(gn.metrics.Metric):
    name = "counting"

    def __init__(self, answer=0.0, name=None):
        super().__init__(name)
        self.answer = answer
        self.add_state("n", 0.0)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.n += 1

    def result(self):
        return self.answer


@pytest.mark.parametrize("answer, shown", [("x", "'x'"), ([1.0, 2.0], r"\[1.0, 2.0\]"), (None, "None")])
def test_a_metric_whose_result_is_no_number_is_named(data, answer, shown):
    x, y = data
    g = model()
    with pytest.raises(GraphError, match=rf"metric 'counting' \(Counting\): result\(\) must return one number, "
                                         rf"got {shown}"):
        g.fit(x, y, verbose=0, metrics=[Counting(answer)])
    assert g.evaluate(x, y, metrics=[Counting(np.float32(0.5))])["counting"] == 0.5


def test_a_metric_function_that_returns_no_number_says_so(data):
    x, y = data
    with pytest.raises(GraphError, match="metric 'nothing': the function must return one number, got None"):
        model().evaluate(x, y, metrics=[gn.metrics.FunctionMetric(lambda t, p: None, name="nothing")])


def test_custom_parts_that_return_text_are_named():
    class Text(gn.activations.Activation):
        name = "text_for_reentrancy"

        def forward(self, z):
            return np.full(z.shape, "a")

        def backward(self, a, grad):
            return grad

    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation=Text())
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    with pytest.raises(GraphError, match=r"custom activation 'text_for_reentrancy' \(Text\): forward must return an "
                                         r"array of z's shape, shape \(2, 4\), got an array of dtype <U1"):
        g.predict(np.zeros((2, 3)))

    class Words(gn.losses.Loss):
        name = "words_for_reentrancy"

        def value(self, y, a):
            return np.full(a.shape[0], "loss")

        def gradient(self, y, a):
            return a - y

    g = model()
    g["dense_1"].loss = Words()
    with pytest.raises(GraphError, match=r"custom loss 'words_for_reentrancy' \(Words\): value must return the loss "
                                         r"of each row, shape \(3,\), got an array of dtype <U4"):
        g.evaluate(np.zeros((3, 3)), np.zeros((3, 1)))


@pytest.mark.parametrize("rate", [None, -1.0, [0.1], "0.1"])
def test_a_custom_schedule_that_gives_no_rate_is_named(data, rate):
    class Given(gn.schedules.LearningRateSchedule):
        name = "given_for_reentrancy"

        def __call__(self, step):
            return rate

        def get_config(self):
            return {}

    x, y = data
    g = model()
    before = g.get_weights()
    with pytest.raises(GraphError, match=r"sgd: its schedule 'given_for_reentrancy' gave the learning rate .* at "
                                         r"step 0; a rate is a number >= 0"):
        g.fit(x, y, verbose=0, optimizer=gn.optimizers.SGD(lr=Given()))
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before)


def test_metrics_and_losses_are_given_arrays_they_cannot_write(data):
    x, y = data
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    kept = y.copy()

    class Clipping(Counting):
        name = "clipping"

        def update_state(self, y_true, y_pred, sample_weight=None):
            np.clip(y_pred, -0.1, 0.1, out=y_pred)

    with pytest.raises(ValueError, match="read-only"):
        model("float64").fit(x, y, shuffle=False, verbose=0, metrics=[Clipping()])

    class Zeroing(gn.losses.Loss):
        name = "zeroing_for_reentrancy"

        def value(self, y, a):
            return ((a - y) ** 2).mean(axis=1)

        def gradient(self, y, a):
            result = 2 * (a - y)
            y *= 0.0
            return result

    class Clamping(Zeroing):
        name = "clamping_for_reentrancy"

        def value(self, y, a):
            np.clip(a, -1.0, 1.0, out=a)
            return ((a - y) ** 2).mean(axis=1)

    g = model("float64")
    g["dense_1"].loss = Zeroing()
    with pytest.raises(ValueError, match="read-only"):
        g.fit(x, y, shuffle=False, verbose=0)
    g["dense_1"].loss = Clamping()
    with pytest.raises(ValueError, match="read-only"):
        g.evaluate(x, y)
    np.testing.assert_array_equal(y, kept)


def test_gradients_inside_a_step_is_refused(data):
    x, y = data
    g = model(dropout=0.3)

    class Probe(Counting):
        name = "probe"

        def update_state(self, y_true, y_pred, sample_weight=None):
            g.gradients(x[:4], y[:4])

    with pytest.raises(GraphError, match=r"gradients: called during a training step of this graph"):
        g.fit(x, y, verbose=0, metrics=[Probe()])
    g.fit(x, y, verbose=0)  # the graph is as usable as before
    g.gradients(x[:4], y[:4])  # and between steps it is an ordinary call


def test_predict_gives_a_categorical_inputs_one_hot_rows():
    pd = pytest.importorskip("pandas")
    g = gn.Graph(seed=0)
    g.add_input("c", categories=["a", "b", "z"])
    g.add_output("y", 2)
    g.connect("c", "y")
    frame = pd.DataFrame({"c": ["a", "b", "z", "q", None]})
    rows = g.predict(frame, outputs=["c"])["c"]
    np.testing.assert_array_equal(rows, np.eye(4, dtype=np.float32)[[1, 2, 3, 0, 0]])
    assert rows.dtype == g.dtype
    assert g.statistics(frame)["c"].mean == pytest.approx(rows.mean())
    many = g.predict(pd.DataFrame({"c": ["b"] * 5000}), outputs=["c", "y"])
    assert many["c"].shape == (5000, 4) and many["c"][:, 2].all()


def test_an_edit_in_on_train_begin_that_fit_could_not_follow_is_refused(data):
    x, y = data
    g = model()
    refused = []

    def add(logs):
        try:
            g.add_output("o2", 1)
        except GraphError as error:
            refused.append(str(error))

    g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.LambdaCallback(on_train_begin=add)])
    assert refused and "is training: adding the output 'o2' is refused" in refused[0]
    assert g.outputs == ["dense_1"]
