"""A fit for tests/test_callbacks_files.py to kill and restart: trains a small
graph with dropout and Adam, backed up in ``sys.argv[1]`` ("-": no backup),
and writes its final weights to ``sys.argv[2]``."""

import sys

import numpy as np

import graphnet as gn


def main(backup: str, out: str, epochs: int = 40) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = np.sin(x[:, :1] * 2) + x[:, 1:2] ** 2
    g = gn.Graph(seed=3, dtype="float32")
    g.add_input("x", 6)
    g.add_hidden("h", 32, activation="tanh", dropout=0.2)
    g.add_hidden("k", 16, activation="relu")
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "k")
    g.connect("k", "y")
    g.connect("x", "y")
    callbacks = [] if backup == "-" else [gn.callbacks.BackupAndRestore(backup)]
    g.fit(x, y, epochs=epochs, batch_size=16, validation_split=0.2, callbacks=callbacks, verbose=0,
          optimizer="adam")
    np.savez(out, **g.get_weights())


if __name__ == "__main__":
    print("ready", flush=True)  # imported: the parent may start its clock
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 40)
