"""XOR: the smallest problem a linear model cannot solve, learned by a graph
with one hidden node and a skip connection from the input to the output."""

import numpy as np

import graphnet as gn

x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
y = np.array([0, 1, 1, 0], dtype=float)

g = gn.Graph(name="xor", seed=0)
g.add_input("x", 2)
g.add_hidden("h", 4, activation="tanh")
g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
g.connect("x", "h")
g.connect(["h", "x"], "y")  # the hidden node plus a skip connection

history = g.fit(x, y, epochs=500, batch_size=4, optimizer=gn.optimizers.Adam(lr=0.05), verbose=0)
predictions = g.predict(x).ravel()
print(f"loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.4f}")
for row, p in zip(x.astype(int).tolist(), predictions):
    print(f"xor{tuple(row)} = {p:.3f}")
print("solved" if np.all((predictions > 0.5) == y.astype(bool)) else "not solved")
