"""Atomic replacement (graphnet._files): a failed write leaves the old file intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
from conftest import build_dag, dag_data

import graphnet as gn
from graphnet import _files as files


# --------------------------------------------------------------- atomic write
def test_failed_write_leaves_the_old_file_intact(tmp_path, rng, monkeypatch):
    g = build_dag()
    path = g.save(tmp_path / "model.gnet")
    good = path.read_bytes()
    x, y = dag_data(rng, 8)
    g.fit(x, y, epochs=1, verbose=0)  # the next save would differ
    original = zipfile.ZipFile.writestr
    written = []

    def fail_half_way(self, info, data, *args, **kwargs):
        if written:
            raise OSError("disk full")
        written.append(info)
        return original(self, info, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        g.save(path)
    monkeypatch.undo()
    assert written  # it did fail half-way, after writing a member
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gnet"]  # no temporary file left
    gn.load(path)


def test_errors_name_the_target_not_the_temporary_file(tmp_path):
    g = build_dag()
    target = tmp_path / "missing" / "model.gnet"
    with pytest.raises(FileNotFoundError) as info:
        g.save(target)
    assert info.value.filename == str(target)
    assert "folder" in str(info.value) and "does not exist" in str(info.value)
    assert ".tmp" not in str(info.value)
    folder = tmp_path / "model.gnet"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(IsADirectoryError, match="is a folder") as info:
        g.save(folder)
    assert info.value.filename == str(folder)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gnet"]  # no temporary file


def test_stale_temporary_files_of_ours_are_removed_on_the_next_save(tmp_path):
    g = build_dag()
    old = time.time() - files.STALE_SECONDS - 60
    names = {
        ".model.gnet.abcd1234.tmp": old,   # ours, for this target, stale: removed
        ".model.gnet.efgh5678.tmp": None,  # ours, but fresh (a write in progress): kept
        ".other.gnet.abcd1234.tmp": old,   # another target's: kept
        ".model.gnet.notours.tmp": old,    # not the pattern we write: kept
        "model.gnet.abcd1234.tmp": old,    # not hidden, not ours: kept
    }
    for name, mtime in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if mtime is not None:
            os.utime(tmp_path / name, (mtime, mtime))
    g.save(tmp_path / "model.gnet")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["model.gnet", *[n for n in names if n != ".model.gnet.abcd1234.tmp"]])


@pytest.mark.parametrize("length", [241, 242, 255])  # the longest names the file system takes
def test_a_name_as_long_as_the_system_allows_is_written_atomically(tmp_path, length):
    g = build_dag()
    target = tmp_path / ("m" * (length - len(".gnet")) + ".gnet")
    assert g.save(target) == target and g.save_weights(target.with_suffix(".npz")) is not None
    g.save(target)  # again, over the first: the temporary file's name fits too
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, target.with_suffix(".npz").name])
    assert gn.load(target).get_weights().keys() == g.get_weights().keys()
    stale = files._temporary_prefix(target.name) + "abcd1234.tmp"  # one a killed write left
    (tmp_path / stale).write_bytes(b"partial")
    os.utime(tmp_path / stale, (time.time() - files.STALE_SECONDS - 1,) * 2)
    g.save(target)
    assert stale not in {p.name for p in tmp_path.iterdir()}


def test_a_name_ending_with_a_separator_names_a_folder_and_is_refused(tmp_path):
    g = build_dag()
    for write in (g.save, g.save_weights):
        with pytest.raises(IsADirectoryError, match="names a folder") as info:
            write(f"{tmp_path}/model.gnet/")
        assert info.value.filename == f"{tmp_path}/model.gnet/"
    with pytest.raises(gn.GraphError, match="names a folder"):
        gn.callbacks.ModelCheckpoint(f"{tmp_path}/best.gnet/", monitor="loss").set_params({"metrics": ["loss"]})
    assert list(tmp_path.iterdir()) == []


def test_a_link_is_replaced_by_the_file_and_never_sends_the_write_elsewhere(tmp_path):
    g, other = build_dag(), build_dag(seed=1)
    (tmp_path / "runs").mkdir()
    real = other.save(tmp_path / "runs" / "model.gnet")
    kept = real.read_bytes()
    (tmp_path / "latest.gnet").symlink_to("runs/model.gnet")
    assert g.save(tmp_path / "latest.gnet") == tmp_path / "latest.gnet"
    assert not (tmp_path / "latest.gnet").is_symlink() and real.read_bytes() == kept
    assert gn.load(tmp_path / "latest.gnet").get_weights()["a->h1.weight"].tolist() == \
        g.get_weights()["a->h1.weight"].tolist()
    (tmp_path / "planted.gnet").symlink_to("nowhere/x.gnet")  # dangling: nothing is made there
    g.save_weights(tmp_path / "planted.gnet")
    assert not (tmp_path / "planted.gnet").is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_folder_that_takes_no_new_files_is_found_before_training(tmp_path, rng, monkeypatch):
    """The permission bits say yes (root on /sys, some network mounts); only
    making a file says no. Checkpoints and the CLI's outputs probe."""
    g = build_dag()
    x, y = dag_data(rng, 8)
    before = g.get_weights()

    def refused(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", refused)
    with pytest.raises(gn.GraphError, match=r"ModelCheckpoint: cannot write .*best.gnet.*cannot create a file in "
                                            r"folder .*Read-only file system"):
        g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.ModelCheckpoint(tmp_path / "best.gnet",
                                                                                 monitor="loss")])
    assert all((before[k] == v).all() for k, v in g.get_weights().items())  # refused before training
    files.check_output(tmp_path / "model.gnet")  # without the probe: the bits alone


def test_every_writer_refuses_a_name_that_can_only_be_a_folders(tmp_path, rng):
    g = build_dag()
    history = g.fit(*dag_data(rng, 8), epochs=1, verbose=0)
    for ending in ("/", "/.", "/.."):
        target = f"{tmp_path}/out.gnet{ending}"
        for write in (g.save, g.save_weights):
            with pytest.raises(IsADirectoryError, match=f"ends with '{ending}', so it names a folder"):
                write(target)
        for make in (lambda t: g.render(t.replace(".gnet", ".svg")), lambda t: gn.plot_history(history, t),
                     lambda t: gn.callbacks.CSVLogger(t), lambda t: gn.callbacks.ModelCheckpoint(t)):
            with pytest.raises(gn.GraphError, match="so it names a folder"):
                make(target)
    assert list(tmp_path.iterdir()) == []


def test_every_reader_and_writer_names_its_argument_for_a_nul_in_a_path(tmp_path):
    g = build_dag()
    g.save(tmp_path / "m.gnet")
    calls = {"save: path": g.save, "save_weights: path": g.save_weights, "load_weights: path": g.load_weights,
             "load: path": gn.load, "diff: a": lambda p: gn.diff(p, g), "diff: b": lambda p: gn.diff(g, p),
             "from_spec: path": lambda p: gn.Graph.from_spec(p + ".json"), "render: path": g.render,
             "ModelCheckpoint: path": gn.callbacks.ModelCheckpoint, "CSVLogger: filename": gn.callbacks.CSVLogger}
    for argument, call in calls.items():
        with pytest.raises(gn.GraphError) as info:
            call(f"{tmp_path}/m\0x")
        assert str(info.value).startswith(f"{argument}: '") and "contains a NUL character ('\\x00')" in str(info.value)


def test_a_link_replaced_by_a_save_does_not_pass_on_its_targets_mode(tmp_path):
    locked = build_dag().save(tmp_path / "locked.gnet")
    os.chmod(locked, 0o400)
    (tmp_path / "link.gnet").symlink_to("locked.gnet")
    build_dag().save(tmp_path / "link.gnet")
    assert os.stat(tmp_path / "link.gnet").st_mode & 0o777 == 0o666 & ~files._umask()
    assert os.stat(locked).st_mode & 0o777 == 0o400


def test_load_takes_a_path_like_that_gives_bytes(tmp_path):
    class BytesPath(os.PathLike):
        def __fspath__(self):
            return os.fsencode(tmp_path / "m.gnet")

    g = build_dag()
    g.save(BytesPath())
    assert gn.load(BytesPath()).get_weights().keys() == g.get_weights().keys()
    g.save_weights(BytesPath())
    g.load_weights(BytesPath())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("reader", ["load", "load_weights"])
def test_a_pipe_given_as_a_model_file_is_refused_without_waiting(tmp_path, reader):
    pipe = tmp_path / "pipe.gnet"
    os.mkfifo(pipe)
    read = {"load": gn.load, "load_weights": build_dag().load_weights}[reader]
    with pytest.raises(gn.ModelFileError, match="is a pipe, not a regular file"):
        read(pipe)  # a blocking open would wait here for a writer forever


_SAVE_FOREVER = """
import sys
import graphnet as gn
g = gn.Graph(seed=0)
g.add_input("x", 1500)
g.add_output("y", 1500)
g.connect("x", "y")
print("ready", flush=True)
while True:
    g.save(sys.argv[1])
"""


def test_a_killed_save_leaves_the_old_file_and_the_next_save_tidies_up(tmp_path):
    target = tmp_path / "big.gnet"
    build_dag().save(target)
    good = target.read_bytes()
    process = subprocess.Popen([sys.executable, "-c", _SAVE_FOREVER, str(target)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "ready\n"
        time.sleep(1.0)  # a few saves of 9 MB each, one of them interrupted
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    data = target.read_bytes()
    assert data == good or gn.load(target).nodes["x"].size == 1500  # the old file or a whole new one
    for leftover in tmp_path.glob(".big.gnet.*.tmp"):  # what a SIGKILL can leave behind
        os.utime(leftover, (time.time() - files.STALE_SECONDS - 1,) * 2)
    build_dag().save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.gnet"]


# ------------------------------------------------------- names in messages
_READERS = {
    "load": lambda name: gn.load(name + ".gnet"),
    "load_weights": lambda name: build_dag().load_weights(name + ".weights.gnet"),
    "from_spec": lambda name: gn.Graph.from_spec(name + ".json"),
    "from_onnx": lambda name: gn.from_onnx(name + ".onnx"),
    "from_keras": lambda name: gn.from_keras(name + ".keras"),
}


@pytest.mark.parametrize("reader", sorted(_READERS))
@pytest.mark.parametrize(("name", "shown"), [
    ("x" * 5000, "xxx ... xxx"),  # longer than any file name the system allows: its start and its end
    ("two\nlines", "two\\nlines"),
], ids=["long", "newline"])
def test_a_file_that_cannot_be_read_is_named_on_one_short_line(tmp_path, reader, name, shown):
    if reader == "from_keras":
        pytest.importorskip("h5py")
    with pytest.raises(gn.ModelFileError) as caught:
        _READERS[reader](str(tmp_path / name))
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300, message[:300]
    assert shown in message and ("no such file" in message or "cannot be read" in message)


_ASCII_NAMES = """
import os, sys, tempfile, numpy as np, graphnet as gn
assert sys.getfilesystemencoding() == "ascii", sys.getfilesystemencoding()
os.chdir(tempfile.mkdtemp())
g = gn.Sequential([gn.Input(2), gn.Dense(1)], seed=0)
calls = {
    "save": lambda: g.save("mod\\u00e8le.gnet"),
    "render": lambda: g.render("mod\\u00e8le.dot"),
    "to_onnx": lambda: g.to_onnx("mod\\u00e8le.onnx"),
    "load": lambda: gn.load("mod\\u00e8le.gnet"),
    "CSVLogger": lambda: g.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0,
                               callbacks=[gn.callbacks.CSVLogger("\\u00e9.csv")]),
    "surrogate": lambda: g.save("a\\ud800b.gnet"),
}
for name, call in calls.items():
    try:
        call()
    except gn.GraphError as exc:
        print(name, ascii(str(exc)))
    else:
        print(name, "no error")
print("files", os.listdir("."))
"""


def test_a_name_the_file_system_encoding_cannot_write_is_named_with_the_encoding():
    """In the C locale without UTF-8 mode file names are ASCII: a writer or
    reader given 'modèle.gnet' names the path and the encoding (save raised
    UnicodeEncodeError, naming neither)."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    shown = subprocess.run([sys.executable, "-c", _ASCII_NAMES], env=env, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in shown.stdout.splitlines())
    for name in ("save", "render", "to_onnx", "load", "CSVLogger"):
        assert "file system encoding 'ascii'" in lines[name] and "\\xe" in lines[name], (name, lines[name])
        assert "PYTHONUTF8=1 or a UTF-8 locale takes it" in lines[name]
    assert lines["surrogate"].endswith("file system encoding 'ascii'\""), lines["surrogate"]  # UTF-8 would not help
    assert lines["files"] == "[]"


def test_a_lone_surrogate_in_a_name_is_refused_without_the_c_locale_remedy(tmp_path):
    """Under UTF-8 a lone surrogate cannot be written either; the message
    names it and the encoding, and offers no remedy that would not help."""
    g = gn.Sequential([gn.Input(2), gn.Dense(1)], seed=0)
    with pytest.raises(gn.GraphError, match=r"holds '\\ud800', which file names cannot hold in this Python's file "
                                            r"system encoding 'utf-8'$"):
        g.save(tmp_path / "a\ud800b.gnet")
    assert list(tmp_path.iterdir()) == []
