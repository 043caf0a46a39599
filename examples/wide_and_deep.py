"""Wide and deep on a real table, its preprocessing inside the graph.

The cars of vega_datasets (406 cars of 1970-1982, a table that ships inside
the package: ``pip install vega_datasets``): predict the fuel use (miles per
gallon) from the make (38 values, the first word of the name), the origin,
the number of cylinders, and five numbers of which one has missing values.

* deep: every column into two relu layers; each categorical column's
  synapse is an embedding table (a row per category, gathered, never a
  one-hot matrix);
* wide: every column straight into the output too, a linear model of the
  one-hot columns and the numbers beside the deep part (Cheng et al., 2016).

The DataFrame goes in as it is: columns bound by name, text looked up in
vocabularies, numbers normalised and missing ones filled with an
indicator, all learnt by ``fit`` from its training rows and saved with the
model. Run ``python examples/wide_and_deep.py [OUT_DIR]``: it prints the
summary and the test error, saves the model, checks the ONNX export in
onnxruntime when it is installed, and writes the diagram when Graphviz is.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import graphnet as gn

try:
    import pandas as pd
    from vega_datasets import local_data
except ImportError:
    sys.exit("this example needs vega_datasets: pip install vega_datasets")

NUMBERS = ["Displacement", "Horsepower", "Weight_in_lbs", "Acceleration", "model_year"]


def load_cars():
    # The package's own file, read as it ships (its loader passes read_json an argument pandas deprecates).
    cars = pd.read_json(local_data.cars.filepath)
    cars["Year"] = pd.to_datetime(cars["Year"])
    cars = cars[cars["Miles_per_Gallon"].notna()].copy()  # the target must be known
    cars["make"] = cars["Name"].str.split().str[0]
    cars["model_year"] = cars["Year"].dt.year
    return cars.reset_index(drop=True)


def wide_and_deep() -> gn.Graph:
    g = gn.Graph(name="wide_and_deep", seed=0)
    g.add_input("make", categories="adapt")
    g.add_input("origin", columns=["Origin"], categories="adapt")
    g.add_input("cylinders", columns=["Cylinders"], categories="adapt")
    g.add_input("numbers", columns=NUMBERS, normalize=True, missing="indicator")
    columns = ["make", "origin", "cylinders", "numbers"]
    g.add_hidden("deep_1", 32, activation="relu")
    g.add_hidden("deep_2", 16, activation="relu")
    g.add_output("mpg", 1)
    g.connect(columns, "deep_1")  # the categorical synapses are embedding tables of width 32
    g.connect("deep_1", "deep_2")
    g.connect(["deep_2", *columns], "mpg")  # deep and wide
    return g


def main(out: Path) -> None:
    cars = load_cars()
    order = np.random.default_rng(0).permutation(len(cars))
    test, train = cars.iloc[order[:80]], cars.iloc[order[80:]]
    g = wide_and_deep()
    scale = 10.0  # miles per gallon in tens: targets near 1, as the output's initialisation expects
    g.fit(train, train["Miles_per_Gallon"] / scale, epochs=100, batch_size=32, verbose=0)
    g.summary()
    predicted = g.predict(test)[:, 0] * scale
    rmse = float(np.sqrt(np.mean((predicted - test["Miles_per_Gallon"].to_numpy()) ** 2)))
    baseline = float(np.sqrt(np.mean((train["Miles_per_Gallon"].mean() - test["Miles_per_Gallon"]) ** 2)))

    path = g.save(out / "wide_and_deep.gnet")
    again = gn.load(path)
    assert np.array_equal(again.predict(test[test.columns[::-1]]), g.predict(test))  # columns by name
    try:
        import onnxruntime

        from graphnet.interop import onnx_feed

        g.to_onnx(out / "wide_and_deep.onnx")
        session = onnxruntime.InferenceSession(str(out / "wide_and_deep.onnx"), providers=["CPUExecutionProvider"])
        onnx_error = float(np.abs(session.run(None, onnx_feed(g, test))[0] - g.predict(test)).max())
        print(f"ONNX export: onnxruntime agrees within {onnx_error:.1e}")
    except ImportError:
        pass
    if shutil.which("dot"):
        g.render(out / "wide_and_deep.png")
    print(f"test RMSE {rmse:.2f} mpg (predicting the mean: {baseline:.2f})")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
