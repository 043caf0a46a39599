"""predict keeps no state on the graph: several threads at once agree with serial calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from conftest import build_dag, dag_data


def test_predict_from_eight_threads_equals_serial_predict(rng):
    g = build_dag(dtype="float32")
    batches = [dag_data(rng, rows=int(n))[0] for n in rng.integers(1, 300, size=32)]
    g.fit(*dag_data(rng, rows=64), epochs=1, verbose=0)  # training buffers exist too
    serial = [g.predict(x, batch_size=50) for x in batches]
    fresh = build_dag(dtype="float32")
    fresh.set_weights(g.get_weights())  # an uncompiled graph: threads race to compile it
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda x: fresh.predict(x, batch_size=50), batches * 4))
    for i, result in enumerate(parallel):
        expected = serial[i % len(batches)]
        for name in expected:
            np.testing.assert_array_equal(result[name], expected[name])
