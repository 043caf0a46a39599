"""The tables of the tabular benchmark, read from files that ship inside
installed packages (nothing is downloaded): each has categorical columns
and missing values.

* ``penguins`` (palmerpenguins, 344 rows): the species (3 classes) from the
  island and sex (categorical, 11 sexes missing) and five numbers (2 rows
  missing each measurement); accuracy.
* ``cars`` (vega_datasets, 398 rows with a known target): miles per gallon
  from the make (38 values, the first word of the name), the origin and the
  cylinders (categorical) and five numbers (6 horsepowers missing); RMSE in
  miles per gallon, the target standardised for training.

One split per table (a quarter of the rows for testing, stratified for the
classes, drawn with seed 0); the seeds of the benchmark vary the weights and
the batches, not the split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Table", "TABLES", "load", "encode"]


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    target: str
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    metric: str  # "accuracy" or "rmse"
    package: str

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"


TABLES = {
    "penguins": Table("penguins", "Palmer penguins: species", "species", ("island", "sex"),
                      ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"),
                      "accuracy", "palmerpenguins"),
    "cars": Table("cars", "Cars: miles per gallon", "Miles_per_Gallon", ("make", "Origin", "Cylinders"),
                  ("Displacement", "Horsepower", "Weight_in_lbs", "Acceleration", "model_year"),
                  "rmse", "vega_datasets"),
}


def _frame(name: str):
    if name == "penguins":
        from palmerpenguins import load_penguins

        return load_penguins()
    import pandas as pd
    from vega_datasets import local_data

    # The package's own file, read as it ships (its loader passes read_json an argument pandas deprecates).
    cars = pd.read_json(local_data.cars.filepath)
    cars["Year"] = pd.to_datetime(cars["Year"])
    cars = cars[cars["Miles_per_Gallon"].notna()].copy()
    cars["make"] = cars["Name"].str.split().str[0]
    cars["model_year"] = cars["Year"].dt.year.astype(float)
    cars["Cylinders"] = cars["Cylinders"].astype(str)  # a category, as a peer's encoder sees it
    return cars.reset_index(drop=True)


def load(name: str):
    """``(table, train frame, test frame)``."""
    table = TABLES[name]
    frame = _frame(name)
    rng = np.random.default_rng(0)
    if table.metric == "accuracy":
        test = np.concatenate([rng.permutation(np.flatnonzero(frame[table.target] == label))[
            : int(round(0.25 * (frame[table.target] == label).sum()))]
            for label in sorted(frame[table.target].unique())])
    else:
        test = rng.permutation(len(frame))[: len(frame) // 4]
    is_test = np.zeros(len(frame), bool)
    is_test[test] = True
    return table, frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def encode(table: Table, train, test):
    """What the peers without preprocessing inside the model are given:
    numbers with the train mean in place of missing values and standardised
    (statistics over the present training values, as graphnet's), category
    codes (0 for unknown or missing, then the sorted training values), and
    the target as class codes or standardised. Returns ``(train, test,
    sizes, target_scale)``: dicts of ``numbers`` and each categorical column,
    the number of codes per column, and ``(mean, std)`` of a numeric target."""
    x = train[list(table.numeric)].to_numpy(np.float64)
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    std[std == 0] = 1.0
    vocab = {c: sorted(train[c].dropna().unique().tolist()) for c in table.categorical}

    def part(frame):
        numbers = frame[list(table.numeric)].to_numpy(np.float64)
        numbers = np.where(np.isnan(numbers), mean, numbers)
        # "filled": for a peer that normalises inside its model (Keras's Normalization)
        out = {"numbers": ((numbers - mean) / std).astype(np.float32), "filled": numbers.astype(np.float32)}
        for c in table.categorical:
            lookup = {v: i + 1 for i, v in enumerate(vocab[c])}
            out[c] = np.array([lookup.get(v, 0) for v in frame[c]], dtype=np.int64)
        return out

    sizes = {c: len(vocab[c]) + 1 for c in table.categorical}
    if table.metric == "accuracy":
        classes = sorted(train[table.target].unique())
        ys = [frame[table.target].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
              for frame in (train, test)]
        scale = None
    else:
        y = train[table.target].to_numpy(np.float64)
        scale = (float(y.mean()), float(y.std()))
        ys = [((frame[table.target].to_numpy(np.float64) - scale[0]) / scale[1]).astype(np.float32)
              for frame in (train, test)]
    return (part(train), ys[0]), (part(test), ys[1]), sizes, scale
