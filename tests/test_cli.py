"""The ``graphnet`` command, run as users run it: in a subprocess."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import build_dag
from modelfiles import bounded, npy_claiming

import graphnet as gn
from graphnet import cli

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
SCRIPT = Path(sys.executable).with_name("graphnet")


def graphnet(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    """Run the command through ``python -m graphnet.cli`` (the console script is
    tested on its own below), so the tests need no installed script."""
    return subprocess.run(
        [sys.executable, "-m", "graphnet.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, match: str, status: int | None = None):
    assert result.returncode != 0
    if status is not None:
        assert result.returncode == status
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("graphnet: error: ")
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "dag.json"
    path.write_text(json.dumps(build_dag().to_dict()), encoding="utf-8")
    return path


# ------------------------------------------------------------------------ demo
@needs_dot
def test_demo_with_a_few_epochs_writes_everything(tmp_path):
    out = tmp_path / "results"
    result = graphnet("demo", "--epochs", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Total params:" in result.stdout
    assert re.search(r"Held-out accuracy .*\n\s+digit\s+0\.\d{4}\n\s+even\s+0\.\d{4}", result.stdout)
    assert "Epoch 2/2" in result.stderr  # the progress bar (tqdm writes to stderr)
    long = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert not long and result.stdout.startswith("graphnet demo: scikit-learn's 8x8 digits, the top"), long
    assert f"into{out}/" in "".join(result.stdout.split())  # a long folder is wrapped too
    names = {p.name for p in out.iterdir()}
    assert names == {"summary.txt", "model.json", "model.svg", "model.png", "history.png"}
    assert ET.parse(out / "model.svg").getroot().tag.endswith("svg")
    assert (out / "model.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert "Total params:" in (out / "summary.txt").read_text()
    rebuilt = gn.Graph.from_dict(json.loads((out / "model.json").read_text()))
    assert rebuilt.inputs == ["top", "bottom"] and rebuilt.outputs == ["digit", "even"]


@needs_dot
def test_the_demo_replaces_links_among_its_outputs_and_leaves_their_targets(tmp_path):
    from graphnet.demo import run

    out, victim = tmp_path / "results", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("mine")
    for name in ("summary.txt", "model.json", "model.svg", "history.png"):
        (out / name).symlink_to(victim)
    run(out, epochs=1, verbose=0, say=lambda text: None)
    assert victim.read_text() == "mine"
    assert not any(path.is_symlink() for path in out.iterdir())


def test_demo_writes_into_demo_output_by_default(tmp_path):
    result = graphnet("demo", "--epochs", "1", "--quiet", cwd=tmp_path, env={"PATH": ""})
    # Without dot the diagram comes as DOT source and the reason is one line.
    assert_one_line_error(result, r"'dot' program was not found.*apt-get install graphviz", status=1)
    names = {p.name for p in (tmp_path / "demo-output").iterdir()}
    assert names == {"summary.txt", "model.json", "history.png", "model.gv"}
    assert "Epoch" not in result.stderr  # --quiet: no progress bars


@needs_dot
@pytest.mark.slow
def test_the_demo_reaches_good_held_out_accuracy(tmp_path):
    result = graphnet("demo", "--quiet", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    accuracy = dict(re.findall(r"^\s+(digit|even)\s+(0\.\d+)$", result.stdout, flags=re.M))
    assert float(accuracy["digit"]) >= 0.96
    assert float(accuracy["even"]) >= 0.95
    # docs/getting-started.md quotes what the defaults print (to 3 places)
    page = (Path(__file__).resolve().parent.parent / "docs" / "getting-started.md").read_text(encoding="utf-8")
    quoted = re.search(r"\(digit (0\.\d+), even\s+(0\.\d+) with the defaults\)", page)
    assert quoted, "getting-started.md no longer quotes the demo's accuracy"
    assert quoted.groups() == (f"{float(accuracy['digit']):.3f}", f"{float(accuracy['even']):.3f}")


# ------------------------------------------------------------- summary, render
def test_summary_of_a_json_spec(spec):
    result = graphnet("summary", str(spec))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('Graph: "dag"')
    assert "Total params: 183" in result.stdout
    for name in build_dag().topological_order:
        assert f" {name} (" in result.stdout


@needs_dot
def test_render_a_json_spec_to_svg(spec, tmp_path):
    out = tmp_path / "dag.svg"
    result = graphnet("render", str(spec), "-o", str(out), "--rankdir", "TB")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Wrote {out}"
    titles = [t.text for t in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}title")]
    assert "main" in titles and "h3->main" in titles


def test_render_to_dot_source_needs_no_graphviz(spec, tmp_path):
    out = tmp_path / "dag.gv"
    result = graphnet("render", str(spec), "--output", str(out), env={"PATH": ""})
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == build_dag().to_dot().source


def test_help_everywhere(capsys):
    result = graphnet("--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: graphnet")
    for command in ("demo", "summary", "render", "diff"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: graphnet {command}")
    assert graphnet("--version").stdout.strip() == f"graphnet {gn.__version__}"


@pytest.mark.skipif(not SCRIPT.exists(), reason="the graphnet console script is not installed here")
def test_the_console_script_runs(spec):
    result = subprocess.run([str(SCRIPT), "summary", str(spec)], capture_output=True, text=True)
    assert result.returncode == 0 and "Total params: 183" in result.stdout
    again = subprocess.run([sys.executable, "-m", "graphnet", "summary", str(spec)], capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout == result.stdout
    result = subprocess.run([str(SCRIPT), "frobnicate"], capture_output=True, text=True)
    assert_one_line_error(result, "invalid choice: 'frobnicate'", status=2)


# --------------------------------------------------------------- bad arguments
@pytest.fixture
def bad_cases(spec, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"nodes": [', encoding="utf-8")
    bad_spec = tmp_path / "bad_spec.json"
    bad_spec.write_text(json.dumps({"nodes": [{"kind": "input", "name": "x", "size": 2},
                                              {"kind": "output", "name": "y", "size": 1,
                                               "activation": "prelu"}],
                                    "synapses": [["x", "y"]]}), encoding="utf-8")
    return [
        ((), "the following arguments are required: COMMAND", 2),
        (("frobnicate",), "invalid choice: 'frobnicate'", 2),
        (("demo", "--epochs", "0"), "argument --epochs: expected a positive integer, got 0", 2),
        (("demo", "--epochs", "many"), "expected a positive integer, got 'many'", 2),
        (("demo", "--seed", "-1"), "expected an integer >= 0", 2),
        (("demo", "--out"), "expected one argument", 2),
        (("render", str(spec)), "required: -o/--output", 2),
        (("render", str(spec), "-o", str(tmp_path / "x.svg"), "--rankdir", "up"), "invalid choice: 'up'", 2),
        (("summary",), "required: FILE", 2),
        (("summary", str(spec), "extra"), "unrecognized arguments: extra", 2),
        (("summary", str(tmp_path / "missing.json")), "missing.json: no such file", 1),
        (("summary", str(tmp_path / "model.txt")), r"expected one of \['.gnet', '.json', '.yaml', '.yml'\]", 1),
        (("summary", str(bad_json)), r"bad.json: not valid JSON \(.*line 1", 1),
        (("summary", str(bad_spec)), "unknown activation 'prelu'", 1),
        (("render", str(spec), "-o", str(tmp_path / "dag.jpeg")), r"dag.jpeg: the diagram .* must end in .svg", 2),
        (("render", str(spec), "-o", str(tmp_path / "no" / "dag.dot")), "does not exist", 1),
    ]


def test_bad_arguments_give_one_line_and_a_non_zero_exit(bad_cases):
    # A few through a real process; all of them in-process below.
    for args, match, status in [bad_cases[i] for i in (0, 2, 10, 13)]:
        assert_one_line_error(graphnet(*args), match, status)


def test_every_bad_argument_is_one_line_in_process(bad_cases, capsys):
    for args, match, status in bad_cases:
        assert cli.main(list(args)) == status, args
        captured = capsys.readouterr()
        assert_one_line_error(
            subprocess.CompletedProcess(args, status, captured.out, captured.err), match, status
        )


# ----------------------------------------------------- in-process: edge cases
def test_load_model_dispatches_on_the_suffix(spec):
    assert cli.load_model(spec).to_dict() == build_dag().to_dict()
    assert set(cli.LOADERS) == {".json", ".yaml", ".yml", ".gnet"}


def test_an_unexpected_error_is_one_line_unless_a_traceback_is_asked_for(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("something broke\nacross lines")

    monkeypatch.setitem(cli.COMMANDS, "summary", broken)
    assert cli.main(["summary", "x.json"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "graphnet: error: unexpected RuntimeError: something broke across lines "
        "(set GRAPHNET_TRACEBACK=1 for the traceback, and please report it)\n"
    )
    monkeypatch.setenv("GRAPHNET_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(["summary", "x.json"])


# ------------------------------------------------------- model files and data
@pytest.fixture
def digits_like(tmp_path, rng):
    """A spec with two inputs and two outputs, and training data for it."""
    g = build_dag(dtype="float32")
    spec = tmp_path / "dag.yaml"
    yaml = pytest.importorskip("yaml")
    spec.write_text(yaml.safe_dump(g.to_dict()), encoding="utf-8")
    x = {"a": rng.normal(size=(60, 5)), "b": rng.normal(size=(60, 3))}
    y = {"aux": rng.integers(0, 3, size=60), "main": rng.integers(0, 2, size=(60, 2)).astype(float)}
    data = tmp_path / "train.npz"
    np.savez(data, **x, **y)
    return spec, data, x, y


def test_train_then_predict_then_summary_and_render(digits_like, tmp_path):
    spec, data, x, y = digits_like
    model = tmp_path / "model.gnet"
    result = graphnet("train", str(spec), "--data", str(data), "--epochs", "3", "--batch-size", "16",
                      "--metrics", "accuracy", "--validation-split", "0.2", "--out", str(model))
    assert result.returncode == 0, result.stderr
    assert "Final epoch: loss: " in result.stdout and "val_main_accuracy" in result.stdout
    trained = gn.load(model)
    assert trained.optimizer.iterations == 3 * 3  # 48 training rows in batches of 16

    pred = tmp_path / "pred.npz"
    result = graphnet("predict", str(model), "--data", str(data), "--out", str(pred))  # targets ignored
    assert result.returncode == 0, result.stderr
    with np.load(pred, allow_pickle=False) as saved:
        expected = trained.predict(x)
        assert sorted(saved.files) == ["aux", "main"]
        for name in expected:
            np.testing.assert_array_equal(saved[name], expected[name])

    again = tmp_path / "again.gnet"  # a saved model continues with its optimizer state
    result = graphnet("train", str(model), "--data", str(data), "--epochs", "1", "--out", str(again), "--quiet")
    assert result.returncode == 0, result.stderr
    assert gn.load(again).optimizer.iterations == 9 + 2  # 60 rows, default batch size 32

    for path in (spec, model):
        result = graphnet("summary", str(path))
        assert result.returncode == 0 and "Total params: 183" in result.stdout
        out = tmp_path / f"{path.stem}.gv"
        assert graphnet("render", str(path), "-o", str(out)).returncode == 0
        assert out.read_text(encoding="utf-8").startswith("digraph")


def test_predict_writes_csv_one_column_per_output_unit(digits_like, tmp_path, capsys):
    spec, data, x, y = digits_like
    model = tmp_path / "m.gnet"
    assert cli.main(["train", str(spec), "--data", str(data), "--epochs", "1", "--out", str(model), "--quiet"]) == 0
    pred = tmp_path / "pred.CSV"
    assert cli.main(["predict", str(model), "--data", str(data), "--out", str(pred)]) == 0
    assert "Wrote" in capsys.readouterr().out
    expected = gn.load(model).predict(x)
    lines = pred.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "aux_0,aux_1,aux_2,main_0,main_1" and len(lines) == 61
    table = np.loadtxt(pred, delimiter=",", skiprows=1, dtype=np.float32)  # every digit float32 holds
    np.testing.assert_array_equal(table, np.hstack([expected["aux"], expected["main"]]))

    one = gn.Sequential([gn.Input(5, name="a"), gn.Dense(1, name="price, in €")], seed=0)
    one.save(tmp_path / "one.gnet")
    np.savez(tmp_path / "a.npz", a=x["a"])
    assert cli.main(["predict", str(tmp_path / "one.gnet"), "--data", str(tmp_path / "a.npz"),
                     "--out", str(tmp_path / "one.csv")]) == 0
    header, first = (tmp_path / "one.csv").read_text(encoding="utf-8").splitlines()[:2]
    assert header == '"price, in €"'  # one unit: the output's name, quoted as CSV quotes a comma
    assert float(first) == pytest.approx(float(one.predict(x["a"][:1])[0, 0]), rel=1e-6)


def test_predict_refuses_csv_columns_whose_names_clash(tmp_path, capsys):
    g = gn.Graph(seed=0)
    g.add_input("a", 2)
    g.add_output("y", 2)
    g.add_output("y_0", 1)
    g.connect("a", "y")
    g.connect("a", "y_0")
    g.save(tmp_path / "clash.gnet")
    np.savez(tmp_path / "a.npz", a=np.ones((3, 2)))
    args = ["predict", str(tmp_path / "clash.gnet"), "--data", str(tmp_path / "a.npz"), "--out", str(tmp_path / "p.csv")]
    _one_line_in_process(capsys, args, r"the CSV columns \['y_0'\] would repeat .*write .npz instead")
    assert not (tmp_path / "p.csv").exists()


def test_train_and_predict_refuse_bad_files_in_one_line(digits_like, tmp_path, capsys):
    spec, data, x, y = digits_like
    missing_b = tmp_path / "no_b.npz"
    np.savez(missing_b, a=x["a"], aux=y["aux"], main=y["main"], extra=x["a"])
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, a=np.array([object()] * 3), b=x["b"], aux=y["aux"], main=y["main"])
    model = tmp_path / "m.gnet"
    assert cli.main(["train", str(spec), "--data", str(data), "--epochs", "1", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    cases = [
        (["train", str(spec), "--data", str(missing_b), "--out", str(model)],
         r"no_b.npz: missing input arrays \['b'\] and unknown arrays \['extra'\]"),
        (["train", str(spec), "--data", str(pickled), "--out", str(model)], r"objects.npz: array 'a' holds Python objects \(pickled data\); refused"),
        (["train", str(spec), "--data", str(tmp_path / "nope.npz"), "--out", str(model)], "nope.npz: no such file"),
        (["train", str(spec), "--data", str(spec), "--out", str(model)], "must be a .npz file"),
        (["train", str(spec), "--data", str(data), "--out", str(tmp_path / "m.zip")], "must end in .gnet"),
        (["train", str(spec), "--data", str(data), "--out", str(model), "--lr", "-1"], "expected a positive number"),
        (["train", str(spec), "--data", str(data), "--out", str(model), "--optimizer", "adagrad"], "invalid choice: 'adagrad'"),
        (["train", str(spec), "--data", str(data), "--out", str(model), "--validation-split", "1"], r"expected a number in \[0, 1\)"),
        (["predict", str(spec), "--data", str(data), "--out", str(tmp_path / "p.npz")], "predict needs a trained model file"),
        (["predict", str(model), "--data", str(data), "--out", str(tmp_path / "p.txt")],
         r"predictions \(written as CSV or .npz\) must end in .csv or .npz"),
        (["predict", str(model), "--data", str(missing_b), "--out", str(tmp_path / "p.npz")], r"missing input arrays \['b'\]"),
        (["summary", str(data)], "cannot tell what this file is"),
    ]
    for args, match in cases:
        status = cli.main(args)
        captured = capsys.readouterr()
        assert status in (1, 2), args
        assert_one_line_error(subprocess.CompletedProcess(args, status, captured.out, captured.err), match)


def test_a_corrupt_model_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "broken.gnet"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert cli.main(["summary", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.gnet" in err


# ------------------------------------------- never lose the user's data
def _one_line_in_process(capsys, args, match, status=1):
    assert cli.main(list(args)) == status, args
    captured = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess(args, status, captured.out, captured.err), match, status)


def test_out_is_checked_before_any_work(digits_like, tmp_path, capsys, monkeypatch):
    spec, data, _, _ = digits_like
    model = tmp_path / "m.gnet"
    assert cli.main(["train", str(spec), "--data", str(data), "--epochs", "1", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    model_bytes, data_bytes = model.read_bytes(), data.read_bytes()
    (tmp_path / "folder.gnet").mkdir()
    (tmp_path / "folder.npz").mkdir()
    link = tmp_path / "link.npz"
    link.symlink_to(data)
    loaded = []
    real_load = cli.load_model
    monkeypatch.setattr(cli, "load_model", lambda path: loaded.append(path) or real_load(path))
    train = ["train", str(spec), "--data", str(data), "--epochs", "500"]
    cases = [
        (train + ["--out", str(tmp_path / "nope" / "m.gnet")], r"--out .*nope/m\.gnet: folder '.*nope' does not exist"),
        (train + ["--out", str(tmp_path / "folder.gnet")], r"--out .*folder\.gnet: is a folder"),
        (["train", str(model), "--data", str(data), "--out", str(model)],
         r"--out .*m\.gnet is the same file as the model FILE: writing it would replace that file"),
        (["predict", str(model), "--data", str(data), "--out", str(data)],
         r"--out .*train\.npz is the same file as the --data file"),
        (["predict", str(model), "--data", str(data), "--out", str(link)], r"link\.npz is the same file as the --data file"),
        (["predict", str(model), "--data", str(data), "--out", str(tmp_path / "folder.npz")], "is a folder"),
        (["predict", str(model), "--data", str(data), "--out", str(tmp_path / "nope" / "p.npz")], "does not exist"),
    ]
    spec_link, model_link = tmp_path / "spec.svg", tmp_path / "model.svg"
    spec_link.symlink_to(spec)
    model_link.symlink_to(model)
    spec_bytes = spec.read_bytes()
    cases += [
        (["render", str(spec), "-o", str(spec_link)], r"spec\.svg is the same file as the model FILE"),
        (["render", str(model), "--stats", str(data), "-o", str(model_link)], r"model\.svg is the same file as"),
        (["diff", str(spec), str(model), "-o", str(spec_link)], r"-o .*spec\.svg is the same file as A"),
    ]
    for args, match in cases:
        _one_line_in_process(capsys, args, match)
    assert spec_link.is_symlink() and spec.read_bytes() == spec_bytes
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only folder (root ignores chmod)
    _one_line_in_process(capsys, train + ["--out", str(tmp_path / "new.gnet")], r"no permission to write in folder")
    assert loaded == []  # refused before reading the model, let alone training it
    assert model.read_bytes() == model_bytes and data.read_bytes() == data_bytes
    assert not (tmp_path / "new.gnet").exists()


def test_bad_argument_values_exit_2_before_any_work(digits_like, tmp_path, capsys, monkeypatch):
    """Names and suffixes the command cannot use are bad arguments (status 2),
    refused before a model is read; the message lists the names it knows."""
    spec, data, _, _ = digits_like
    model = tmp_path / "m.gnet"
    assert cli.main(["train", str(spec), "--data", str(data), "--epochs", "1", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    loaded = []
    real_load = cli.load_model
    monkeypatch.setattr(cli, "load_model", lambda path: loaded.append(path) or real_load(path))
    train = ["train", str(model), "--data", str(data)]
    cases = [
        (train + ["--out", str(tmp_path / "o.gnet"), "--optimizer", "adamm"],
         r"argument --optimizer: invalid choice: 'adamm' \(choose from 'adam', 'adamw', "),
        (train + ["--out", str(tmp_path / "o.gnet"), "--metrics", "accuracy", "acuracy"],
         r"argument --metrics: invalid choice: 'acuracy' \(choose from 'accuracy', "),
        (train + ["--out", str(tmp_path / "o.json")], r"--out .*o\.json: the model file must end in \.gnet$"),
        (["predict", str(model), "--data", str(data), "--out", str(tmp_path / "p.txt")],
         r"--out .*p\.txt: predictions .* must end in \.csv or \.npz$"),
        (["render", str(model), "-o", str(tmp_path / "m.xyz")],
         r"-o .*m\.xyz: the diagram .* must end in \.svg, \.png, \.pdf, \.dot, \.gv or \.html$"),
        (["diff", str(model), str(model), "-o", str(tmp_path / "x.txt")],
         r"-o .*x\.txt: the drawing of the diff must end in \.svg, .* or \.gv$"),
    ]
    for args, match in cases:
        _one_line_in_process(capsys, args, match, status=2)
    # A folder that does not exist is a failure of the place, as for --out (status 1), but found first too.
    _one_line_in_process(capsys, ["diff", str(model), str(model), "-o", str(tmp_path / "nope" / "x.svg")],
                         r"^graphnet: error: -o .*nope/x\.svg: folder '.*nope' does not exist", status=1)
    assert loaded == [] and not (tmp_path / "o.gnet").exists()
    assert cli.main(train + ["--out", str(tmp_path / "o.gnet"), "--metrics", "acuracy"]) == 2
    assert "custom_objects" not in capsys.readouterr().err  # the command line cannot pass them


def test_data_files_that_are_not_npz_archives_say_what_they_are(digits_like, tmp_path, capsys):
    spec, data, x, _ = digits_like
    model = tmp_path / "m.gnet"
    assert cli.main(["train", str(spec), "--data", str(data), "--epochs", "1", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "text.npz").write_text("a,b\n1,2\n")
    with open(tmp_path / "single.npz", "wb") as handle:
        np.save(handle, x["a"])
    out = str(tmp_path / "p.npz")
    cases = [
        ("folder.npz", r"folder\.npz: is a folder; the input data must be a \.npz file \(numpy\.savez"),
        ("text.npz", r"text\.npz: not a \.npz archive \(not a zip archive: a text file starting 'a,b"),
        ("single.npz", r"single\.npz: not a \.npz archive \(not a zip archive: a single \.npy array, as numpy\.save writes"),
    ]
    for name, match in cases:
        _one_line_in_process(capsys, ["predict", str(model), "--data", str(tmp_path / name), "--out", out], match)
    assert not os.path.exists(out)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_data_header_claiming_a_huge_array_is_a_clean_error(digits_like, tmp_path, capsys, method):
    # The old reader trusted numpy's header: "unexpected MemoryError ... please report it".
    spec = digits_like[0]
    huge = tmp_path / "huge.npz"
    with zipfile.ZipFile(huge, "w", method) as archive:
        archive.writestr("a.npy", npy_claiming((10**12,)))
        archive.writestr("b.npy", npy_claiming((10**6, 10**6)))
    outcome, seconds, peak = bounded(
        lambda: cli.main(["train", str(spec), "--data", str(huge), "--out", str(tmp_path / "m.gnet")])
    )
    assert outcome == 1 and peak < 32 << 20 and seconds < 10, (outcome, peak, seconds)
    captured = capsys.readouterr()
    assert_one_line_error(
        subprocess.CompletedProcess([], 1, captured.out, captured.err),
        r"huge\.npz: array 'a': its header claims shape \(1000000000000,\) of float64 "
        r"\(8,000,000,000,000 bytes\), but the member holds 16 bytes of data",
    )


def test_shape_errors_name_the_data_file_and_its_array(digits_like, tmp_path, capsys):
    spec, _, x, y = digits_like
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, **{**x, "a": x["a"][:, :4]}, **y)
    short = tmp_path / "short.npz"
    np.savez(short, **x, aux=y["aux"][:50], main=y["main"])
    _one_line_in_process(capsys, ["train", str(spec), "--data", str(narrow), "--out", str(tmp_path / "m.gnet")],
                         r"narrow\.npz: input 'a': expected shape \(n, 5\), got \(60, 4\)")
    _one_line_in_process(capsys, ["train", str(spec), "--data", str(short), "--out", str(tmp_path / "m.gnet")],
                         r"short\.npz: rows disagree: .*60 rows .*'aux' has 50")


def test_a_hostile_yaml_spec_is_one_quick_line(tmp_path, capsys):
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                      + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh"))
                      + "nodes: *h\n")
    outcome, seconds, _ = bounded(lambda: cli.main(["summary", str(laughs)]))
    assert outcome == 1 and seconds < 5
    captured = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess([], 1, captured.out, captured.err),
                          r"laughs\.yaml: line 1: YAML anchors and aliases \(&a\) are not allowed")


# ------------------------------------------------------------ seeing inside
def test_check_prints_a_table_that_fits_80_columns(digits_like):
    spec, data, _, _ = digits_like
    result = graphnet("check", str(spec), "--data", str(data), "--rows", "8", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Gradient check of 'dag'") and "on 8 rows, 15 parameters" in result.stdout
    assert max(len(line) for line in lines) <= 80
    assert sum(line.rstrip().endswith(" ok") for line in lines) == 15
    assert lines[-1].startswith("OK: every gradient agrees")


def test_check_exits_1_when_a_derivative_is_wrong(digits_like, monkeypatch, capsys):
    from graphnet import activations

    class Broken(activations.Tanh):
        name = "broken"

        def backward(self, a, grad, z=None):
            return grad

    spec, data, _, _ = digits_like
    graph = build_dag(dtype="float32")
    graph["h1"].activation = Broken()
    monkeypatch.setattr(cli, "load_model", lambda path: graph)
    assert cli.main(["check", str(spec), "--data", str(data), "--samples", "4"]) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out
    assert_one_line_error(subprocess.CompletedProcess([], 1, captured.out, captured.err),
                          r"gradients disagree; worst .* \(relative error")


def test_render_with_stats_and_collapse(digits_like, tmp_path):
    spec, data, x, _ = digits_like
    out = tmp_path / "inside.gv"
    result = graphnet("render", str(spec), "--stats", str(data), "--collapse", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Statistics on 60 rows, loss ")
    source = out.read_text(encoding="utf-8")
    assert "Statistics of dag</b> on 60 rows" in source and "grad " in source
    only_x = tmp_path / "x.npz"
    np.savez(only_x, **x)
    result = graphnet("render", str(spec), "--stats", str(only_x), "-o", str(out))
    assert result.returncode == 0 and "so no gradient norms" in result.stdout
    assert "weight norm |W|" in out.read_text(encoding="utf-8")


def test_check_and_render_stats_refuse_bad_arguments_in_one_line(digits_like, tmp_path, capsys):
    spec, data, x, y = digits_like
    only_x = tmp_path / "x.npz"
    np.savez(only_x, **x)
    scalar, uneven = tmp_path / "scalar.npz", tmp_path / "uneven.npz"
    np.savez(scalar, **{**x, "a": np.float64(1.0)}, **y)  # read whole, as train reads it, not cut to --rows first
    np.savez(uneven, **x, **{**y, "aux": y["aux"][:-1]})
    cases = [
        (["check", str(spec)], "required: --data", 2),
        (["check", str(spec), "--data", str(data), "--rows", "0"], "expected a positive integer", 2),
        (["check", str(spec), "--data", str(only_x)], r"missing output arrays \['aux', 'main'\]", 1),
        (["check", str(spec), "--data", str(scalar)], r"scalar\.npz: input 'a': expected shape \(n, 5\), got \(\)", 1),
        (["check", str(spec), "--data", str(uneven), "--rows", "4"], r"uneven\.npz: rows disagree", 1),
        (["render", str(spec), "--stats", str(tmp_path / "none.npz"), "-o", str(tmp_path / "o.gv")],
         "none.npz: no such file", 1),
    ]
    for args, match, status in cases:
        assert cli.main(args) == status, args
        captured = capsys.readouterr()
        assert_one_line_error(subprocess.CompletedProcess(args, status, captured.out, captured.err), match, status)


# ------------------------------------------------------------------------ diff
@needs_dot
def test_diff_of_two_saved_models_prints_80_columns_and_draws(tmp_path):
    import copy

    before = build_dag()
    after = copy.deepcopy(before)
    after.insert("h1", "h2", "h1b")
    after.widen("h3", 7)
    after.freeze("aux")
    a, b = before.save(tmp_path / "a.gnet"), after.save(tmp_path / "b.gnet")
    out = tmp_path / "diff.svg"
    result = graphnet("diff", str(a), str(b), "-o", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    head = " ".join(" ".join(lines[:4]).split())  # long paths wrap
    assert f"a: {a} (7 nodes" in head and f"b: {b} (8 nodes" in head
    for expected in ("+ h1b", "- h1 -> h2", "~ h3", "size 5 → 7", "frozen no → yes", "reshaped (5,) → (7,)"):
        assert expected in result.stdout, expected
    assert lines[-1] == f"Wrote {out}" and ET.parse(out).getroot().tag.endswith("svg")


def test_diff_of_a_spec_compares_structure_only(spec, tmp_path, capsys):
    other = build_dag()
    other.nodes["h1"].dropout = 0.5
    b = other.save(tmp_path / "b.gnet")
    assert cli.main(["diff", str(spec), str(b)]) == 0
    out = capsys.readouterr().out
    assert "~ h1  dropout 0 → 0.5" in out and "weights not compared" in out
    assert "(weights not compared:" in out and f"{spec}: specs)" in out.replace("\n", "")
    assert all(len(line) <= 80 for line in out.splitlines()), out  # a long path is wrapped too
    assert cli.main(["diff", str(spec), str(tmp_path / "nope.gnet")]) == 1
    captured = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess([], 1, captured.out, captured.err), "nope.gnet: no such file")
    assert cli.main(["diff", str(spec)]) == 2
    captured = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess([], 2, captured.out, captured.err), "required: B")


def test_a_name_holding_a_newline_is_echoed_on_one_line(capsys):
    """File names are echoed as Python writes control characters (issue 29, item 20)."""
    assert cli.main(["summary", "/tmp/no\nsuch\tfile.json"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/tmp/no\\nsuch\\tfile.json: no such file" in err


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs a /proc folder")
def test_an_output_in_a_folder_that_takes_no_files_says_so(tmp_path, capsys):
    """/proc exists but no file can be made in it (even as root): the error must
    not say the folder does not exist (issue 29, item 20)."""
    g = build_dag()
    model = g.save(tmp_path / "m.gnet")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x.npz", a=rng.normal(size=(4, 5)), b=rng.normal(size=(4, 3)))
    status = cli.main(["predict", str(model), "--data", str(tmp_path / "x.npz"), "--out", "/proc/p.npz"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1, err
    assert "does not exist" not in err and "'/proc'" in err, err


def test_a_data_file_holds_at_most_as_many_arrays_as_the_limit_says(tmp_path):
    from graphnet._npz import read_arrays

    path = tmp_path / "many.npz"
    np.savez(path, **{f"a{i}": np.zeros(2) for i in range(5)})
    assert len(read_arrays(path, max_members=5)[0]) == 5
    with pytest.raises(gn.ModelFileError, match=r"many\.npz: holds 5 arrays; a \.npz archive has at most 4"):
        read_arrays(path, max_members=4)


@pytest.mark.parametrize("missing", [["matplotlib"], ["sklearn"], ["sklearn", "matplotlib"]])
def test_the_demo_without_its_extra_names_it_and_makes_nothing(tmp_path, monkeypatch, missing):
    from graphnet import demo

    for module in missing:
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    out = tmp_path / "res" / "sub"
    names = {"sklearn": "scikit-learn", "matplotlib": "matplotlib"}
    with pytest.raises(ImportError, match=rf"^the demo needs {' and '.join(names[m] for m in missing)}: "
                                          r"pip install 'graphnet\[demo\]'$"):
        demo.run(out=out, epochs=1, verbose=0)
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_the_commands_write_to_an_output_whose_encoding_lacks_a_character(tmp_path, encoding):
    a = gn.Sequential([gn.Input(3), gn.Dense(8, name="hé"), gn.Dense(1)], seed=0)
    b = copy.deepcopy(a)
    b.widen("hé", 12)  # the report says "8 → 12"
    a.save(tmp_path / "a.gnet")
    b.save(tmp_path / "b.gnet")
    def run(*args):
        done = subprocess.run([sys.executable, "-m", "graphnet.cli", *args], capture_output=True, timeout=300,
                              env={**os.environ, "PYTHONIOENCODING": encoding}, check=False)
        assert done.returncode == 0, done.stderr.decode(encoding)
        return done.stdout.decode(encoding)

    assert "8 ? 12" in run("diff", str(tmp_path / "a.gnet"), str(tmp_path / "b.gnet"))
    assert ("hé" if encoding == "cp1252" else "h?") in run("summary", str(tmp_path / "b.gnet"))


def test_a_data_file_using_a_zip_feature_zipfile_does_not_read_is_named(tmp_path, capsys):
    """The .npz data reader meets zipfile's NotImplementedError (a member with
    flag bit 5) as a refusal naming the file and the array, exit status 1."""
    from modelfiles import entry_named, patch

    one = gn.Sequential([gn.Input(5, name="a"), gn.Dense(1)], seed=0)
    one.save(tmp_path / "one.gnet")
    np.savez(tmp_path / "a.npz", a=np.zeros((3, 5)))
    data = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "a.npz").write_bytes(patch(data, entry_named(data, "a.npy") + 8, "<H", 0x20))
    assert cli.main(["predict", str(tmp_path / "one.gnet"), "--data", str(tmp_path / "a.npz"),
                     "--out", str(tmp_path / "one.csv")]) == 1
    assert re.search(r"a\.npz: array 'a': damaged \(compressed patched data \(flag bit 5\)\)",
                     capsys.readouterr().err)
    assert not (tmp_path / "one.csv").exists()
