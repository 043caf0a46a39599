"""Grow a trained model without starting over: widen it, deepen it, train on.

A small relu network learns a wavy surface until it stops improving. Then
``widen`` gives its hidden layer four times the units (Net2WiderNet) and
``insert`` adds a second relu layer that starts as an identity
(Net2DeeperNet): the loss is the same before and after the surgery, and
training goes on from there instead of from scratch. A copy of the small model
trained for as long again shows what the extra capacity bought.
"""

import copy

import numpy as np

import graphnet as gn


def surface(rows, rng):
    x = rng.uniform(-2, 2, size=(rows, 2))
    y = np.sin(2 * x[:, :1]) * np.cos(1.5 * x[:, 1:]) + 0.05 * rng.normal(size=(rows, 1))
    return x, y


def main():
    rng = np.random.default_rng(0)
    x, y = surface(2000, rng)
    model = gn.Sequential([gn.Input(2), gn.Dense(6, activation="relu", name="hidden"),
                           gn.Dense(1, name="out")], seed=0, name="surface")
    model.fit(x, y, epochs=60, batch_size=64, optimizer=gn.optimizers.Adam(lr=0.01), verbose=0)
    small = model.evaluate(x, y)["loss"]
    print(f"small model (6 relu units) after 60 epochs: loss {small:.5f}")

    alone = copy.deepcopy(model)  # the same small model, to compare with

    model.widen("hidden", 24, split="random")
    model.insert("hidden", "out", "deeper", activation="relu")  # 24 units, an identity
    grown = model.evaluate(x, y)["loss"]
    print(f"widened to 24 units and deepened by a 24-unit relu layer: loss {grown:.5f} "
          f"(changed by {abs(grown - small) / small:.1e} of itself)")

    # The new and reshaped parameters start without optimizer state and with
    # a step count of their own (Adam's bias correction starts over for them);
    # the rest keep theirs. Training goes on with the graph's own Adam, at a
    # smaller rate now that the model is close to a minimum. (The copy of the
    # small model gets the same treatment.)
    for graph in (model, alone):
        graph.optimizer.learning_rate = 0.001
    first = model.fit(x, y, epochs=1, batch_size=64, verbose=0).history["loss"][0]
    model.fit(x, y, epochs=149, batch_size=64, verbose=0)
    alone.fit(x, y, epochs=150, batch_size=64, verbose=0)
    after, plain = model.evaluate(x, y)["loss"], alone.evaluate(x, y)["loss"]
    print(f"first epoch after the surgery: loss {first:.5f}, {first / small:.2f}x the loss before "
          f"({'no jump' if first < 1.25 * small else 'it jumped'})")
    print(f"150 more epochs: grown model {after:.5f}, small model {plain:.5f}")
    print(f"the grown model ends {plain / after:.1f}x lower")


if __name__ == "__main__":
    main()
