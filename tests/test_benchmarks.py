"""Smoke test of the speed suite's quick mode: graphnet against the numpy reference only.

It checks that the suite runs, that the table is produced with a PASS/MISS
verdict per target, and that graphnet and the hand-fused reference, started
from the same weights and fed the same batches, end with the same numbers.
It never asserts a time: speed belongs in ``python -m benchmarks``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

benchmarks = pytest.importorskip("benchmarks", reason="run pytest from the repository root")
from benchmarks import report  # noqa: E402


@pytest.fixture(scope="module")
def quick_report():
    return benchmarks.run(quick=True, frameworks=("graphnet", "numpy"), reps=2)


def test_every_workload_is_reported(quick_report):
    names = [r["workload"] for r in quick_report["results"]]
    assert names == list(benchmarks.WORKLOAD_NAMES)
    text = report.markdown(quick_report)
    for name in ("W1", "W2", "W3", "W4", "W5", "W6"):
        assert f"| {name} " in text
    assert "## W7 scaling" in text
    assert "## W8 serving latency" in text
    assert "## Targets" in text
    assert quick_report["sgemm"]["median_gflops"] > 0


def test_every_target_has_a_verdict(quick_report):
    for result in quick_report["results"]:
        assert result["checks"], result["workload"]
        for check in result["checks"]:
            assert check["status"] in ("PASS", "MISS", "n/a")
            # Only the PyTorch comparisons (not run here) and onnxruntime's (an
            # optional extra) may lack a value.
            if check["status"] == "n/a":
                assert "torch" in check["what"] or "onnxruntime" in check["what"]


@pytest.mark.parametrize("name", ["W1", "W2", "W3", "W5"])
def test_training_agrees_with_the_reference(quick_report, name):
    result = next(r for r in quick_report["results"] if r["workload"] == name)
    agreement = result["agreement"]
    assert agreement["ok"], agreement
    assert agreement["max_rel_weight_diff"] < 1e-4
    assert agreement["rel_loss_diff"] < 1e-4
    # With numba installed, graphnet also ran without its fused kernel: same weights, bit for bit.
    assert agreement.get("kernels_bit_identical", True)


def test_predict_agrees_with_the_reference(quick_report):
    result = next(r for r in quick_report["results"] if r["workload"] == "W4")
    assert result["agreement"]["max_abs_diff"] < 1e-5
    # Memory beyond the result does not grow with the number of rows.
    memory = result["memory"]
    assert memory["graphnet"] <= memory["graphnet_small"] * 1.1 + 2**20


def test_scaling_reports_exponents(quick_report):
    result = next(r for r in quick_report["results"] if r["workload"] == "W7")
    assert [s["nodes"] for s in result["sizes"]] == [10, 100, 300]
    assert set(result["exponents"]) == {"build", "plan", "first_step", "step"}


def test_latency_answers_agree(quick_report):
    result = next(r for r in quick_report["results"] if r["workload"] == "W8")
    assert [row["batch"] for row in result["batches"]] == [1, 8, 64]
    for row in result["batches"]:
        assert set(row["seconds"]) >= {"graphnet", "numpy"}
        assert all(seconds > 0 for seconds in row["seconds"].values())
        # The hand-written forward and onnxruntime (when installed) give graphnet's answers.
        assert row["max_abs_diff"]["numpy"] < 1e-6
        assert row["max_abs_diff"].get("onnxruntime", 0.0) < 1e-5


def test_results_are_written(quick_report, tmp_path):
    md, js = report.write(quick_report, tmp_path)
    assert md.read_text().startswith("# graphnet benchmark")
    assert json.loads(js.read_text())["results"][0]["workload"] == "W1"


# ------------------------------------------------------------ quality panel
def _answers(**scores):
    return {lib: {"scores": s, "seconds": [0.1] * len(s), "epochs": 3} for lib, s in scores.items()}


def test_quality_verdict_by_the_standard_error_of_the_difference():
    from benchmarks import quality

    peer = [0.90, 0.92, 0.94, 0.96, 0.98]  # mean 0.94, se 0.01 (std 0.0224 / sqrt 5)
    close = [0.915, 0.925, 0.93, 0.935, 0.945]  # mean 0.93: 0.01 below, se_diff ~0.0106
    far = [0.88, 0.89, 0.90, 0.91, 0.92]  # mean 0.90: four standard errors below
    passed = quality.summarise("wine", _answers(graphnet=close, torch=peer, sklearn=[0.5] * 5))
    assert passed["best_peer"] == "torch" and passed["verdict"] == "PASS"
    assert passed["se_diff"] == pytest.approx(np.hypot(np.std(close, ddof=1), np.std(peer, ddof=1)) / np.sqrt(5))
    assert passed["within_peer_se"] is True  # 0.93 >= 0.94 - 0.01 too
    missed = quality.summarise("wine", _answers(graphnet=far, torch=peer))
    assert missed["verdict"] == "MISS" and missed["gap_in_se"] < -2
    # MSE: lower is better, so the best peer is the smallest and the margin goes up.
    mse = quality.summarise("sine", _answers(graphnet=[0.0021] * 5, torch=[0.002] * 5, keras=[0.003] * 5))
    assert mse["best_peer"] == "torch" and mse["verdict"] == "MISS"  # no spread: no margin
    assert quality.summarise("sine", _answers(graphnet=[0.0019] * 5, torch=[0.002] * 5))["verdict"] == "PASS"


def test_quality_panel_quick_runs_graphnet_in_its_own_process():
    from benchmarks import quality

    answers = quality._worker("graphnet", ["wine", "diabetes"], [0], quick=True, graphnet_init=None)
    assert set(answers) == {"wine", "diabetes"}
    for answer in answers.values():
        assert len(answer["scores"]) == 1 and answer["seconds"][0] > 0
    assert 0 <= answers["wine"]["scores"][0] <= 1  # an accuracy
    report = {"quick": True, "date": "now", "machine": "m", "python": "3", "libraries": ["graphnet"],
              "seeds": [0], "graphnet_init": None,
              "results": [quality.summarise(t, {"graphnet": a}) for t, a in answers.items()]}
    text = quality.markdown(report)
    assert "| wine |" in text and "| diabetes |" in text and "**n/a**" in text


def test_the_quality_study_names_initialisers_per_layer_kind():
    from benchmarks.quality_worker import layer_inits, train_graphnet
    from benchmarks.quality_tasks import get, make_data

    assert layer_inits(None) == (None, None)
    assert layer_inits("fan_in_uniform") == ("fan_in_uniform", "fan_in_uniform")
    assert layer_inits("output=small_uniform") == (None, "small_uniform")
    assert layer_inits("hidden=he_normal,output=zeros") == ("he_normal", "zeros")
    with pytest.raises(ValueError, match="unknown layer kind"):
        layer_inits("head=zeros")
    # The default is the study's output=small_uniform on a regression task,
    # and the previous default (fan_in_uniform everywhere) is another model.
    task = get("sine")
    data = make_data(task)
    default = train_graphnet(task, data, 0, 1)[0]
    assert train_graphnet(task, data, 0, 1, init="output=small_uniform")[0] == default
    assert train_graphnet(task, data, 0, 1, init="output=fan_in_uniform")[0] != default


def test_the_gpu_benchmark_runs_on_a_fake_gpu(monkeypatch):
    """benchmarks/gpu.py end to end (quick sizes, no PyTorch) on graphnet's
    CUDA backend over tests/fake_cupy.py: the script a GPU session runs must
    not fail on its first line there. Times mean nothing here."""
    import sys
    import types

    import fake_cupy
    import standin

    from benchmarks import gpu
    from graphnet import backend
    from graphnet._cuda import CudaBackend

    fake = fake_cupy.module()
    special = types.ModuleType("cupyx.scipy.special")
    special.expit, special.erf = standin.special.expit, standin.special.erf
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.special = special
    for name, module in {"cupy": fake, "cupyx": cupyx, "cupyx.scipy": cupyx.scipy,
                         "cupyx.scipy.special": special}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(standin, "STRICT", False)  # the naive CuPy reference reads each loss
    undo = backend.register("cuda", lambda: CudaBackend(fake, special))
    try:
        assert gpu.available() is None
        result = gpu.run(quick=True, reps=1, torch=False)
    finally:
        undo()
    assert [r["workload"] for r in result["results"]] == ["W1", "W3", "W4"]
    for r in result["results"]:
        assert set(r["seconds"]) == {"graphnet_cuda", "cupy_reference"}
        assert r["check"]["status"] == "n/a"  # no PyTorch, no verdict
    train = result["results"][0]["agreement"]
    assert train["max_rel_weight_diff"] < 1e-4
    assert result["results"][2]["agreement"]["max_abs_diff"] < 1e-5
    assert "| W1 MNIST-size MLP |" in gpu.markdown(result)


def test_the_distributed_benchmark_runs_in_quick_mode():
    """``python -m benchmarks.distributed --quick``: both clusters, the table, the
    measured cost model and the search (local SGD's parameter bytes per step an
    eighth of sync's)."""
    pytest.importorskip("distributed")
    from benchmarks import distributed

    result = distributed.run(quick=True)
    text = distributed.markdown(result)
    for row in ("in process, 1 thread", "dask, 1 worker", "dask, 2 workers", "| 8 | 8 |", "| 64 | 1 |",
                "Per-step overhead on one local worker", "Search of 16 configurations"):
        assert row in text
    assert [s["trials"] for s in result["search"]] == [16, 16] and not any(s["failed"] for s in result["search"])
    for cluster in result["cluster"]:
        sync, local = cluster["sync_every=1"], cluster["sync_every=8"]
        assert sync["parameter_bytes_per_step"] == pytest.approx(8 * local["parameter_bytes_per_step"])



# ------------------------------------------------------------ the tabular benchmark
def test_tables_verdicts_two_standard_errors_and_speed():
    from benchmarks import tables

    peer = [0.90, 0.92, 0.94, 0.96, 0.98]  # mean 0.94
    within_two = [0.915, 0.92, 0.925, 0.93, 0.935]  # mean 0.925: within two se of the difference
    far = [0.85, 0.86, 0.87, 0.88, 0.89]
    answers = {**_answers(graphnet=within_two, sklearn=peer), "keras": {"scores": [0.5] * 5, "seconds": [1.0] * 5}}
    passed = tables.summarise("penguins", answers)
    assert passed["best_peer"] == "sklearn" and passed["verdict"] == "PASS"
    assert passed["speed"]["keras"]["speedup"] == pytest.approx(10.0) and passed["speed"]["keras"]["verdict"] == "PASS"
    assert tables.summarise("penguins", _answers(graphnet=far, sklearn=peer))["verdict"] == "MISS"
    rmse = tables.summarise("cars", _answers(graphnet=[3.0] * 5, torch=[3.2] * 5))  # lower is better
    assert rmse["best_peer"] == "torch" and rmse["verdict"] == "PASS"


@pytest.mark.slow
def test_tables_quick_run_reads_both_tables_from_their_packages():
    pytest.importorskip("palmerpenguins")
    pytest.importorskip("vega_datasets")
    from benchmarks import tables

    report = tables.run(["graphnet", "sklearn"], quick=True, seeds=[0])
    assert [r["table"] for r in report["results"]] == ["penguins", "cars"]
    for r in report["results"]:
        assert set(r["stats"]) == {"graphnet", "sklearn"} and r["verdict"] in ("PASS", "MISS")
    assert set(report["embedding"]) == {"50", "10000"}
    assert "## The embedding path against one-hot rows" in tables.markdown(report)


def test_ab_compares_two_checkouts_without_touching_their_numba_caches(tmp_path):
    """``python -m benchmarks.ab`` against a copy of this checkout: both sides
    reach the same weights, W7 reports its three phases, and numba's caches
    go to the run's own folder (a kernel the copy cached under the name
    graphnet_other would not load the next time the copy is graphnet)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(benchmarks.__file__).resolve().parent.parent
    shutil.copytree(root / "graphnet", tmp_path / "graphnet", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "benchmarks.ab", str(tmp_path), "--only", "W5,W7", "--quick",
                           "--reps", "1"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"})
    assert done.returncode == 0, done.stderr
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| W")]
    assert [r[0] for r in rows] == ["| W5", "| W7 plan", "| W7 first step", "| W7 next step"]
    assert all(r[-1] == "True |" for r in rows)  # the same weights on both sides
    assert not list(tmp_path.glob("graphnet/**/*.nb*"))
    assert "numba could not compile" not in done.stderr


def test_plan_floor_copies_every_parameter_the_plan_holds(capsys):
    """``python -m benchmarks.plan_floor``: the floor reads and copies every
    weight and bias the plan's store holds (none missed, none twice), and
    its table has a row per phase with the sort as its unit."""
    from benchmarks import models, plan_floor

    g = models.build_scaling(40, 4)
    phases, values = plan_floor.floor(g)
    assert list(phases) == ["validate and order", "slot columns", "read and copy weights"]
    assert all(seconds >= 0 for seconds in phases.values())
    store = g.plan.store.values
    assert values.dtype == store.dtype and values.size == store.size == g.num_params
    np.testing.assert_array_equal(np.sort(values), np.sort(store))

    assert plan_floor.main(["--nodes", "30", "--width", "4", "--reps", "1"]) == 0
    rows = [line.split(" | ")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["| validate and order", "| slot columns", "| read and copy weights", "| floor",
                        "| networkx sort", "| whole plan"]
