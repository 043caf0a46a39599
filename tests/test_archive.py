"""The guarded zip/npz reader (graphnet._archive), through ``gn.load``: hostile,
truncated and fuzzed model files are refused with ModelFileError."""

from __future__ import annotations

import copy
import io
import json
import re
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from conftest import build_dag, dag_data
from modelfiles import (
    END_COMMENT,
    END_DIRECTORY_SIZE,
    END_ENTRIES,
    END_ENTRIES_HERE,
    ENTRY_COMMENT_LENGTH,
    ENTRY_COMPRESSED,
    ENTRY_HEADER_OFFSET,
    bounded,
    directory_entries,
    end_record,
    entry_named,
    npy_claiming,
    npz_bytes,
    patch,
    read_members,
    rewrite,
    spec_of,
    zip_bytes,
)

import graphnet as gn
from graphnet import _archive as archive, _npz as npz, saving


# ------------------------------------------------------------- hostile files
def test_missing_file_and_nonzip_bytes(tmp_path):
    with pytest.raises(gn.ModelFileError, match=r"nope\.gnet: no such file"):
        gn.load(tmp_path / "nope.gnet")
    bad = tmp_path / "notes.gnet"
    bad.write_text("hello, I am not a zip file")
    with pytest.raises(gn.ModelFileError, match=r"notes\.gnet: not a graphnet model file \(not a zip"):
        gn.load(bad)
    with pytest.raises(gn.ModelFileError, match="is a folder, not a regular file"):
        gn.load(tmp_path)


@pytest.mark.parametrize("cut", [0.99, 0.7, 0.5, 0.1])
def test_truncated_file(tmp_path, saved, cut):
    data = saved.read_bytes()
    short = tmp_path / "short.gnet"
    short.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(gn.ModelFileError, match="short.gnet"):
        gn.load(short)


def test_a_zip_cut_before_any_end_record_is_called_truncated(tmp_path, saved):
    """A file that starts as a zip archive but has no end record is called
    truncated, rather than described by its first bytes as if it were no zip."""
    short = tmp_path / "short.gnet"
    short.write_bytes(saved.read_bytes()[:100])
    with pytest.raises(gn.ModelFileError, match=r"short\.gnet: not a graphnet model file \(a zip archive without "
                                                r"its end record: truncated or damaged\)$"):
        gn.load(short)


def test_pickled_object_array_is_refused(tmp_path, saved):
    weights = dict(np.load(io.BytesIO(read_members(saved)["weights.npz"])))
    weights["h1.bias"] = np.array([{"__reduce__": "os.system"}] * 6, dtype=object)
    bad = rewrite(saved, tmp_path / "pickle.gnet", weights__npz=npz_bytes(weights, allow_pickle=True))
    with pytest.raises(gn.ModelFileError, match=r"pickle\.gnet: weights\.npz: array 'h1\.bias' holds Python objects"):
        gn.load(bad)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("activation", "os.system", "unknown activation 'os.system'"),
        ("activation", {"name": "relu", "__class__": "subprocess.Popen"}, r"activation\.__class__: expected a parameter name"),
        ("activation", {"name": "relu", "__init__": 1}, r"activation\.__init__: expected a parameter name"),
        ("activation", {"name": "relu", "mode": "x"}, "bad parameters"),
        ("loss", "builtins.eval", "unknown loss"),
        ("kind", "__import__('os').system('ls')", "unknown kind"),
    ],
)
def test_code_like_names_are_refused(tmp_path, saved, field, value, message):
    spec = spec_of(saved)
    node = next(n for n in spec["nodes"] if n["kind"] == "output")
    node[field] = value
    bad = rewrite(saved, tmp_path / "code.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match=message):
        gn.load(bad)


def test_unknown_optimizer_name_is_refused(tmp_path, saved):
    training = json.loads(read_members(saved)["training.json"])
    training["optimizer"]["config"]["name"] = "subprocess.Popen"
    bad = rewrite(saved, tmp_path / "opt.gnet", training__json=json.dumps(training).encode())
    with pytest.raises(gn.ModelFileError, match=r"training\.json: optimizer\.config: unknown optimizer"):
        gn.load(bad)


def test_cycle_is_refused(tmp_path, saved):
    spec = spec_of(saved)
    spec["synapses"].append({"src": "main", "dst": "h1", "init": "zeros", "trainable": True})
    bad = rewrite(saved, tmp_path / "cycle.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match="cycle"):
        gn.load(bad)


def test_wrong_shape_dtype_and_values_are_refused(tmp_path, saved):
    weights = dict(np.load(io.BytesIO(read_members(saved)["weights.npz"])))
    cases = {
        "expected shape \\(6,\\), found \\(7,\\)": {"h1.bias": np.zeros(7, np.float32)},
        "expected dtype float32, found float64": {"h1.bias": np.zeros(6, np.float64)},
        "expected dtype float32, found int32": {"h1.bias": np.zeros(6, np.int32)},
        "NaN or inf": {"h1.bias": np.full(6, np.nan, np.float32)},
    }
    for message, change in cases.items():
        bad = rewrite(saved, tmp_path / "w.gnet", weights__npz=npz_bytes({**weights, **change}))
        with pytest.raises(gn.ModelFileError, match=message):
            gn.load(bad)
    missing = {k: v for k, v in weights.items() if k != "h1.bias"}
    bad = rewrite(saved, tmp_path / "w.gnet", weights__npz=npz_bytes(missing))
    with pytest.raises(gn.ModelFileError, match="does not match the architecture.*missing \\['h1.bias'\\]"):
        gn.load(bad)
    extra = {**weights, "evil": np.zeros(1, np.float32)}
    bad = rewrite(saved, tmp_path / "w.gnet", weights__npz=npz_bytes(extra))
    with pytest.raises(gn.ModelFileError, match="unexpected \\['evil'\\]"):
        gn.load(bad)


def test_members_are_checked(tmp_path, saved):
    with pytest.raises(gn.ModelFileError, match="unexpected member 'run_me.py'"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", run_me__py=b"import os"))
    with pytest.raises(gn.ModelFileError, match="missing weights.npz"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", weights__npz=None))
    with pytest.raises(gn.ModelFileError, match="has optimizer.npz but no training.json"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", training__json=None))
    with pytest.raises(gn.ModelFileError, match="graph.json is not valid JSON"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", graph__json=b"{'nodes': []"))
    duplicated = spec_of(saved)
    text = json.dumps(duplicated).replace('"name": "dag"', '"name": "dag", "name": "again"')
    with pytest.raises(gn.ModelFileError, match="key 'name' appears twice"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", graph__json=text.encode()))


def test_zip_bomb_is_refused_before_inflating(tmp_path, saved, monkeypatch):
    members = read_members(saved)
    members["weights.npz"] = bytes(20_000_000)  # inflates 1000:1
    bomb = tmp_path / "bomb.gnet"
    bomb.write_bytes(zip_bytes(members, {"weights.npz": zipfile.ZIP_DEFLATED}))
    assert bomb.stat().st_size < 100_000
    inflated = []
    for module in (archive, saving):
        monkeypatch.setattr(module, "read_member", lambda *a: inflated.append(a) or b"")
    with pytest.raises(gn.ModelFileError, match="possible zip bomb"):
        gn.load(bomb)
    assert not inflated


def test_size_limits(tmp_path, saved, monkeypatch):
    with pytest.raises(gn.ModelFileError, match="more than max_bytes=1,000; pass a larger max_bytes"):
        gn.load(saved, max_bytes=1000)
    monkeypatch.setattr(saving, "MAX_JSON_BYTES", 100)
    with pytest.raises(gn.ModelFileError, match="graph.json is .* bytes, more than the limit of 100"):
        gn.load(saved)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e40, "10", 0, -1, 1.5, True, None])
def test_a_bad_max_bytes_is_the_argument_s_error_not_the_file_s(saved, bad):
    """NaN compares false against every size: unchecked, it would switch the limit off."""
    with pytest.raises(gn.GraphError, match=r"^load: max_bytes must be a positive integer") as info:
        gn.load(saved, max_bytes=bad)
    assert not isinstance(info.value, gn.ModelFileError)


def test_architecture_larger_than_its_weights_is_refused(tmp_path, saved):
    spec = spec_of(saved)
    spec["nodes"][2]["size"] = 10_000_000  # h1: 50 million weights from 'a' alone
    bad = rewrite(saved, tmp_path / "huge.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match=r"graph\.json: spec describes .* more than the limit"):
        gn.load(bad)


def test_many_members_are_refused_before_listing(tmp_path):
    many = tmp_path / "many.gnet"
    many.write_bytes(zip_bytes({f"m{i}": b"" for i in range(200)}))
    with pytest.raises(gn.ModelFileError, match="lists 200 members; a graphnet model file has at most 4"):
        gn.load(many)


def test_newer_format_version_is_refused_clearly(tmp_path, saved):
    spec = spec_of(saved)
    spec["format_version"] = 2
    spec["graphnet_version"] = "9.0.0"
    bad = rewrite(saved, tmp_path / "new.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match="written by graphnet 9.0.0 in format version 2.*Upgrade graphnet"):
        gn.load(bad)


@pytest.mark.parametrize("member", ["graph.json", "weights.json"])
@pytest.mark.parametrize("version", [2, 0, "1"])
def test_load_weights_and_backups_refuse_a_format_version_they_cannot_read(tmp_path, trained, member, version):
    g = trained[0]
    path = g.save(tmp_path / "model.gnet") if member == "graph.json" else g.save_weights(tmp_path / "w.weights.gnet")
    header = json.loads(read_members(path)[member])
    header["format_version"] = version
    bad = rewrite(path, tmp_path / "bad.gnet", **{member.replace(".", "__"): json.dumps(header).encode()})
    before = g.get_weights()
    expected = "format version 2 and? .*reads format version 1 and older" if version == 2 \
        else "format_version must be a positive integer"
    with pytest.raises(gn.ModelFileError, match=expected.replace("2 and? ", "2; this graphnet")):
        g.load_weights(bad)
    for name, array in g.get_weights().items():
        np.testing.assert_array_equal(array, before[name])
    if member == "weights.json" and version == 2:  # what BackupAndRestore resumes from
        (tmp_path / "backup").mkdir()
        (tmp_path / "backup" / "epoch-000002.weights.gnet").write_bytes(bad.read_bytes())
        with pytest.raises(gn.ModelFileError, match="format version 2"):
            g.fit(trained[1], trained[2], epochs=4, verbose=0,
                  callbacks=[gn.callbacks.BackupAndRestore(tmp_path / "backup")])


def test_load_of_a_weights_file_says_what_it_is_and_how_to_read_it(tmp_path, trained):
    path = trained[0].save_weights(tmp_path / "last.weights.gnet")
    with pytest.raises(gn.ModelFileError, match=r"last\.weights\.gnet: a graphnet weights file \(written by "
                                                r"save_weights\).*g\.load_weights\(path\)"):
        gn.load(path)


def test_not_a_graphnet_file(tmp_path, saved):
    spec = spec_of(saved)
    spec["format"] = "keras"
    bad = rewrite(saved, tmp_path / "k.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match="format 'keras', expected 'graphnet'"):
        gn.load(bad)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("rng", "train", "bit_generator"), "MT19937", "rng.train: expected a PCG64 state"),
        (("rng", "train", "state", "state"), -1, "rng.train: expected a PCG64 state"),
        (("optimizer", "iterations"), -3, "optimizer.iterations: expected an integer >= 0"),
        (("optimizer", "layout", 0, 0), "nope->x.weight", "optimizer.layout\\[0\\]: expected a parameter"),
        (("optimizer", "slots"), ["m"], "optimizer.slots: expected \\['m', 'v'\\]"),
        (("optimizer", "config", "lr"), "0.1; import os", "optimizer.config.lr: expected a number"),
        (("optimizer", "config", "beta1"), 7.0, "beta1 must be in"),
    ],
)
def test_hostile_training_state(tmp_path, saved, path, value, message):
    training = json.loads(read_members(saved)["training.json"])
    target = training
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    bad = rewrite(saved, tmp_path / "t.gnet", training__json=json.dumps(training).encode())
    with pytest.raises(gn.ModelFileError, match=message):
        gn.load(bad)


# ------------------------------------------- bounded by the bytes present
MB = 1 << 20
# A refusal that reads a few records costs well under a megabyte and a few
# milliseconds; the bounds below are generous so a loaded machine cannot make
# them flake, and still far below what trusting the headers costs (gigabytes,
# tens of seconds).
SMALL_PEAK = 8 * MB
SMALL_SECONDS = 2.0


def _tiny_model(weights: bytes = b"PK\x05\x06" + bytes(18), size=(50_000, 9_999)) -> bytes:
    """A model file of a few hundred bytes whose graph.json describes a huge
    dense layer (500 million weights by default)."""
    spec = {"format": "graphnet", "format_version": 1,
            "nodes": [{"kind": "input", "name": "x", "size": size[0]},
                      {"kind": "output", "name": "y", "size": size[1]}],
            "synapses": [["x", "y"]]}
    return zip_bytes({"graph.json": json.dumps(spec).encode(), "weights.npz": weights},
                     {"graph.json": zipfile.ZIP_DEFLATED})


def _refused(data: bytes, match: str):
    outcome, seconds, peak = bounded(lambda: gn.load(io.BytesIO(data)))
    assert isinstance(outcome, gn.ModelFileError), outcome
    assert re.search(match, str(outcome)), str(outcome)
    assert peak < SMALL_PEAK and seconds < SMALL_SECONDS, (peak, seconds)
    return outcome


def test_sizes_claimed_by_the_directory_are_not_trusted():
    # 2 GB claimed for weights.npz in a file of 350 bytes: on the old reader,
    # 500 million parameters were allocated and initialised (11 s, 2 GB) first.
    data = _tiny_model()
    at = entry_named(data, "weights.npz")
    hostile = patch(data, at + ENTRY_COMPRESSED, "<LL", 2_000_000_000, 2_000_000_000)
    assert len(hostile) < 400
    _refused(hostile, r"member 'weights.npz' claims 2,000,000,000 bytes .* data ends at byte")


def test_the_architecture_is_bounded_by_the_weights_real_bytes():
    # Deflated weights that claim 100x their compressed size (within the ratio
    # limit) but inflate to a few bytes: the limit comes from what they hold.
    data = _tiny_model(bytes(3_000), size=(3_000, 2))
    members = read_members(io.BytesIO(data))
    deflated = zip_bytes(members, {"weights.npz": zipfile.ZIP_DEFLATED, "graph.json": zipfile.ZIP_DEFLATED})
    _refused(deflated, r"graph\.json: spec describes 6,002 parameters, more than the limit of 750")
    at = entry_named(deflated, "weights.npz")
    compressed = struct.unpack_from("<L", deflated, at + ENTRY_COMPRESSED)[0]
    claimed = patch(deflated, at + ENTRY_COMPRESSED + 4, "<L", 90 * compressed)
    _refused(claimed, r"weights\.npz: expected [\d,]+ bytes, found 3,000 \(truncated\?\)|damaged zip")
    bomb = patch(deflated, at + ENTRY_COMPRESSED + 4, "<L", 200 * compressed + 5_000)
    _refused(bomb, r"weights\.npz would inflate .* more than 100 times")


def test_a_directory_longer_than_its_declared_count_is_refused_before_zipfile_reads_it(saved):
    # The end record says 4 members; the directory lists 40,004. The old
    # reader let zipfile build all of them (1M entries: 20 s, 520 MB).
    data = saved.read_bytes()
    end = end_record(data)
    first = directory_entries(data)[0]
    entry = data[first : directory_entries(data)[1]]
    extra = entry * 40_000
    hostile = data[:end] + extra + data[end:]
    size = struct.unpack_from("<L", data, end + END_DIRECTORY_SIZE)[0]
    hostile = patch(hostile, end + len(extra) + END_DIRECTORY_SIZE, "<L", size + len(extra))
    _refused(hostile, r"declares 4 members but its directory lists 5")
    # And a count that is itself large is refused from the end record alone.
    many = patch(hostile, end + len(extra) + END_ENTRIES_HERE, "<HH", 40_004, 40_004)
    _refused(many, r"lists 40,004 members; a graphnet model file has at most 4")


def test_a_zip64_end_record_is_read_and_checked(saved):
    data = saved.read_bytes()
    end = end_record(data)
    entries, size, offset = struct.unpack_from("<HLL", data, end + END_ENTRIES)
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    honest = data[:end] + record + locator + data[end:]
    assert gn.load(io.BytesIO(honest)).to_dict() == gn.load(saved).to_dict()
    lying = data[:end] + record[:24] + struct.pack("<2Q", 10**6, 10**6) + record[40:] + locator + data[end:]
    _refused(lying, r"lists 1,000,000 members")


def test_members_swallowed_by_a_comment_length_are_an_error(saved, trained):
    # weights.npz's entry claims a comment as long as the two entries after it:
    # zipfile then sees 2 members. The old reader loaded the file without its
    # training state (optimizer None, no error).
    data = saved.read_bytes()
    starts = directory_entries(data)
    assert len(starts) == 4 and trained[0].optimizer is not None
    swallowed = end_record(data) - starts[2]
    hostile = patch(data, starts[1] + ENTRY_COMMENT_LENGTH, "<H", swallowed)
    with zipfile.ZipFile(io.BytesIO(hostile)) as archive:
        assert archive.namelist() == ["graph.json", "weights.npz"]  # what zipfile alone would load
    _refused(hostile, r"declares 4 members but its directory lists 2")


def test_members_must_lie_inside_the_file_and_apart(saved):
    data = saved.read_bytes()
    starts = directory_entries(data)
    first_offset = struct.unpack_from("<L", data, starts[0] + ENTRY_HEADER_OFFSET)[0]
    # Every member pointing at the same bytes (the overlapping-entries zip bomb).
    shared = data
    for at in starts[1:]:
        shared = patch(shared, at + ENTRY_HEADER_OFFSET, "<L", first_offset)
    shared = patch(shared, starts[0] + ENTRY_COMPRESSED, "<L", end_record(data) // 2)
    _refused(shared, r"members overlap|claims .* bytes at offset|damaged")
    # A directory that does not end where the end record is (data prepended or cut).
    _refused(b"junk" + data, r"does not end where the end record is")
    commented = patch(data, end_record(data) + END_COMMENT, "<H", 5) + b"hello"
    assert gn.load(io.BytesIO(commented)).to_dict() == gn.load(saved).to_dict()  # a real comment is fine


def test_duplicate_names_are_found_in_linear_time():
    # 20,000 arrays expected and 20,000 others present: the old check searched
    # a list per name (400 million comparisons, 6.6 s here; this takes 0.3 s).
    shapes = {f"n{i}.bias": (1,) for i in range(20_000)}
    raw = npz_bytes({f"other{i}": np.zeros(1, np.float32) for i in range(20_000)})
    start = time.perf_counter()  # no tracemalloc here: it slows zipfile tenfold
    with pytest.raises(gn.ModelFileError) as info:
        npz.parse_npz(raw, shapes, np.dtype(np.float32), "m.gnet: weights.npz", "graph.json")
    seconds = time.perf_counter() - start
    assert re.search(r"missing \['n0\.bias', .* 19995 more\]; unexpected \['other0'", str(info.value))
    assert seconds < 3.0, seconds


def test_an_npy_header_claiming_more_than_the_member_holds_is_refused(saved):
    members = read_members(saved)
    inner = read_members(io.BytesIO(members["weights.npz"]))
    inner["h1.bias.npy"] = npy_claiming((10**12,), "<f4")
    bad = rewrite(saved, saved.with_name("claims.gnet"), weights__npz=zip_bytes(inner))
    _refused(bad.read_bytes(), r"array 'h1\.bias': expected shape \(6,\), found \(1000000000000,\)")



@pytest.mark.parametrize("version", [1, 2])
def test_an_npy_header_that_is_no_python_literal_is_refused_naming_the_array(saved, trained, tmp_path, version):
    """numpy reads a header its literal parser refuses with a fallback that
    raises tokenize's TokenError (found by coverage-guided fuzzing): load and
    load_weights refuse it as any malformed array."""
    members = read_members(saved)
    inner = read_members(io.BytesIO(members["weights.npz"]))
    buffer = io.BytesIO()
    write = np.lib.format.write_array_header_1_0 if version == 1 else np.lib.format.write_array_header_2_0
    write(buffer, {"descr": "<f4", "fortran_order": False, "shape": (6,)})
    header = buffer.getvalue().replace(b"'fortran_order'", b"]fortran_order'", 1)
    inner["h1.bias.npy"] = header + b"\0" * 24
    bad = rewrite(saved, tmp_path / "token.gnet", weights__npz=zip_bytes(inner))
    _refused(bad.read_bytes(), r"array 'h1\.bias'.* is not a readable \.npy array")
    twin = copy.deepcopy(trained[0])
    bad_weights = twin.save_weights(tmp_path / "w.weights.gnet")
    weights_members = read_members(bad_weights)
    inner = read_members(io.BytesIO(weights_members["weights.npz"]))
    inner["h1.bias.npy"] = header + b"\0" * 24
    rewrite(bad_weights, bad_weights, weights__npz=zip_bytes(inner))
    with pytest.raises(gn.ModelFileError, match=r"is not a readable \.npy array"):
        twin.load_weights(bad_weights)


@pytest.mark.parametrize(("offset", "value", "said"), [
    (6, 201, r"a zip archive graphnet cannot read \(zip file version 20\.1\)"),  # version needed to extract
    (8, 0x20, r"cannot be read \(compressed patched data \(flag bit 5\)\)"),  # the flags
])
def test_a_zip_feature_zipfile_does_not_read_is_refused_by_every_reader(saved, trained, tmp_path, offset, value,
                                                                       said):
    """zipfile's NotImplementedError for a feature it does not read (found
    by coverage-guided fuzzing of load_weights) is a ModelFileError naming
    the file, from load and load_weights alike (test_cli: the .npz data reader)."""
    twin = copy.deepcopy(trained[0])
    weights = twin.save_weights(tmp_path / "w.weights.gnet")
    for path, name in ((saved, "weights.npz"), (weights, "training.json")):
        data = path.read_bytes()
        path.write_bytes(patch(data, entry_named(data, name) + offset, "<H", value))
    before = twin.get_weights()
    with pytest.raises(gn.ModelFileError, match=rf"model\.gnet.*{said}"):
        gn.load(saved)
    with pytest.raises(gn.ModelFileError, match=rf"w\.weights\.gnet.*{said}"):
        twin.load_weights(weights)
    assert all(np.array_equal(v, twin.get_weights()[k]) for k, v in before.items())

# ---------------------------------------------------------------- fuzzing
_JUNK = [None, True, -1, 0, 2**70, 1e308, -0.5, "", "x", "relu", "__import__('os')", [], [1, 2], {}, {"name": 1}]


def _mutate_json(data, rng):
    """Replace one value somewhere in a JSON document with junk."""
    target, key = None, None
    node = data
    for _ in range(int(rng.integers(1, 6))):
        if isinstance(node, dict) and node:
            key = list(node)[int(rng.integers(len(node)))]
        elif isinstance(node, list) and node:
            key = int(rng.integers(len(node)))
        else:
            break
        target, node = node, node[key]
    if target is not None:
        target[key] = _JUNK[int(rng.integers(len(_JUNK)))]
    return data


def _variants(path, rng, count):
    """Byte flips, truncations, content flips with valid CRCs, swapped,
    dropped and duplicated members, and junk values in the JSON members."""
    data = path.read_bytes()
    members = read_members(path)
    names = list(members)
    for i in range(count):
        kind = i % 6
        if kind == 0:  # flip bytes anywhere
            raw = bytearray(data)
            for at in rng.integers(0, len(raw), size=int(rng.integers(1, 8))):
                raw[at] ^= int(rng.integers(1, 256))
            yield bytes(raw)
        elif kind == 1:  # truncate
            yield data[: int(rng.integers(0, len(data)))]
        elif kind == 2:  # flip bytes inside one member, then re-zip with good CRCs
            name = names[int(rng.integers(len(names)))]
            raw = bytearray(members[name])
            for at in rng.integers(0, len(raw), size=int(rng.integers(1, 4))):
                raw[at] ^= int(rng.integers(1, 256))
            yield zip_bytes({**members, name: bytes(raw)})
        elif kind == 3:  # swap two members' contents
            a, b = rng.choice(len(names), size=2, replace=False)
            yield zip_bytes({**members, names[a]: members[names[b]], names[b]: members[names[a]]})
        elif kind == 4:  # drop one member or truncate it
            name = names[int(rng.integers(len(names)))]
            changed = dict(members)
            if rng.random() < 0.5:
                del changed[name]
            else:
                changed[name] = members[name][: int(rng.integers(0, len(members[name])))]
            yield zip_bytes(changed)
        else:  # junk inside graph.json or training.json
            name = ["graph.json", "training.json"][int(rng.integers(2))]
            doc = _mutate_json(json.loads(members[name]), rng)
            yield zip_bytes({**members, name: json.dumps(doc).encode()})


def test_fuzzed_files_raise_only_model_file_error(tmp_path):
    g = build_dag(dtype="float32")
    g.optimizer = "adam"
    x, y = dag_data(np.random.default_rng(0), 8)
    g.fit(x, y, epochs=1, verbose=0)
    path = g.save(tmp_path / "fuzz.gnet")
    rng = np.random.default_rng(2024)
    outcomes = {"refused": 0, "loaded": 0}
    for variant in _variants(path, rng, 3000):
        try:
            loaded = gn.load(io.BytesIO(variant))
        except gn.ModelFileError:
            outcomes["refused"] += 1
        else:
            # A flip inside the float data can still be a valid file; it must run.
            loaded.predict(x)
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 2000


# Fields of the zip records a hostile writer may set to anything: (offset, struct format).
_ENTRY_FIELDS = [(8, "<H"), (10, "<H"), (16, "<L"), (20, "<L"), (24, "<L"), (28, "<H"), (30, "<H"),
                 (32, "<H"), (34, "<H"), (42, "<L")]
_LOCAL_FIELDS = [(6, "<H"), (8, "<H"), (14, "<L"), (18, "<L"), (22, "<L"), (26, "<H"), (28, "<H")]
_END_FIELDS = [(4, "<H"), (6, "<H"), (8, "<H"), (10, "<H"), (12, "<L"), (16, "<L"), (20, "<H")]
_BIG = {"<H": 0xFFFF, "<L": 0xFFFFFFFF}


def _field_value(rng, fmt, old, size):
    choices = [0, 1, _BIG[fmt], old + 1, max(old - 1, 0), min(size, _BIG[fmt]), int(rng.integers(0, _BIG[fmt]))]
    return choices[int(rng.integers(len(choices)))]


def _structural_variants(path, rng, count):
    """Edits of the zip records themselves: header fields set to extreme or
    off-by-one values, entries duplicated, dropped or swallowed, counts and
    offsets changed, records added; .npy headers claiming other shapes and
    dtypes; junk and huge sizes in the JSON."""
    data = path.read_bytes()
    members = read_members(path)
    end = end_record(data)
    starts = directory_entries(data)
    bounds = starts[1:] + [end]
    locals_ = [struct.unpack_from("<L", data, at + ENTRY_HEADER_OFFSET)[0] for at in starts]
    for i in range(count):
        kind = i % 7
        if kind == 0:  # one field of one directory entry, local header or the end record
            record = int(rng.integers(3))
            table, base = [(_ENTRY_FIELDS, starts), (_LOCAL_FIELDS, locals_), (_END_FIELDS, [end])][record]
            at = base[int(rng.integers(len(base)))]
            offset, fmt = table[int(rng.integers(len(table)))]
            old = struct.unpack_from(fmt, data, at + offset)[0]
            yield patch(data, at + offset, fmt, _field_value(rng, fmt, old, len(data)))
        elif kind == 1:  # duplicate, drop or reorder directory entries (counts fixed up or not)
            entries = [data[a:b] for a, b in zip(starts, bounds)]
            choice = int(rng.integers(3))
            if choice == 0:
                entries.insert(int(rng.integers(len(entries) + 1)), entries[int(rng.integers(len(entries)))])
            elif choice == 1:
                entries.pop(int(rng.integers(len(entries))))
            else:
                rng.shuffle(entries)
            directory = b"".join(entries)
            out = data[: starts[0]] + directory + data[end:]
            new_end = starts[0] + len(directory)
            out = patch(out, new_end + END_DIRECTORY_SIZE, "<L", len(directory))
            if rng.random() < 0.5:
                out = patch(out, new_end + END_ENTRIES_HERE, "<HH", len(entries), len(entries))
            yield out
        elif kind == 2:  # a comment length (entry or archive) that swallows what follows
            if rng.random() < 0.5:
                at = starts[int(rng.integers(len(starts)))]
                yield patch(data, at + ENTRY_COMMENT_LENGTH, "<H", int(rng.integers(1, end - at)))
            else:
                yield patch(data, end + END_COMMENT, "<H", int(rng.integers(1, 0xFFFF))) + bytes(int(rng.integers(0, 64)))
        elif kind == 3:  # a zip64 end record (with a locator) holding random values
            values = [int(v) for v in rng.integers(0, 1 << 40, size=4)]
            if rng.random() < 0.5:
                values[:2] = [len(starts)] * 2
            record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, *values)
            yield data[:end] + record + struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1) + data[end:]
        elif kind == 4:  # an .npy header in weights.npz or optimizer.npz claiming another array
            name = ["weights.npz", "optimizer.npz"][int(rng.integers(2))]
            inner = read_members(io.BytesIO(members[name]))
            key = list(inner)[int(rng.integers(len(inner)))]
            shape = [(10**12,), (10**6, 10**6), (), (0,), (3, 2), (2**62, 4)][int(rng.integers(6))]
            dtype = ["<f4", "<f8", ">f4", "<i4", "|b1", "<c8", "|O"][int(rng.integers(7))]
            try:
                inner[key] = npy_claiming(shape, dtype, bytes(int(rng.integers(0, 64))))
            except ValueError:  # numpy refuses to write that header at all
                inner[key] = b"\x93NUMPY\x01\x00" + bytes(8)
            method = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED][int(rng.integers(2))]
            yield zip_bytes({**members, name: zip_bytes(inner, {key: method})})
        elif kind == 5:  # sizes in graph.json far beyond the weights
            doc = json.loads(members["graph.json"])
            node = doc["nodes"][int(rng.integers(len(doc["nodes"])))]
            node["size"] = [10**6, 10**9, 2**40, 2**41, 10**30][int(rng.integers(5))]
            yield zip_bytes({**members, "graph.json": json.dumps(doc).encode()})
        else:  # deflated members whose sizes claim up to the ratio limit and beyond
            deflated = zip_bytes(members, dict.fromkeys(members, zipfile.ZIP_DEFLATED))
            at = directory_entries(deflated)[int(rng.integers(len(members)))]
            compressed = struct.unpack_from("<L", deflated, at + ENTRY_COMPRESSED)[0]
            claim = int(compressed * rng.choice([2, 50, 99, 101, 1000, 5000]))
            yield patch(deflated, at + ENTRY_COMPRESSED + 4, "<L", min(claim, 0xFFFFFFFF))


def _large_model(rng) -> gn.Graph:
    """About 60,000 parameters with Adam's state: a model file of about 750 KB."""
    g = gn.Graph(name="large", seed=1)
    g.add_input("x", 200)
    g.add_hidden("h", 250, activation="relu")
    g.add_output("y", 40, activation="softmax", loss="categorical_crossentropy")
    g.connect("x", "h")
    g.connect("h", "y")
    g.fit(rng.normal(size=(16, 200)), rng.integers(0, 40, 16), epochs=1, verbose=0, optimizer="adam")
    return g


def test_fuzzed_files_in_bounded_time_and_memory(tmp_path):
    """Every variant (byte flips, truncation, header fields, structure edits,
    .npy headers, JSON junk) loads cleanly or raises ModelFileError, each in
    at most about a second and 100 MB, for files of a few kilobytes and of
    about 750 KB."""
    rng = np.random.default_rng(11)
    small = build_dag(dtype="float32")
    x, y = dag_data(np.random.default_rng(0), 8)
    small.fit(x, y, epochs=1, verbose=0, optimizer="adam")
    large = _large_model(rng)
    cases = []
    for graph, inputs, count in ((small, x, 1470), (large, {"x": rng.normal(size=(4, 200))}, 140)):
        path = graph.save(tmp_path / f"{graph.name}.gnet")
        assert path.stat().st_size < 1 << 20
        share = count * 2 // 7
        cases += [(v, inputs) for v in _variants(path, rng, share)]
        cases += [(v, inputs) for v in _structural_variants(path, rng, count - share)]
    worst_seconds = worst_peak = 0.0
    outcomes = {"refused": 0, "loaded": 0}
    tracemalloc.start()
    try:
        for variant, inputs in cases:
            assert len(variant) < 1 << 20
            outcome, seconds, peak = bounded(lambda variant=variant: gn.load(io.BytesIO(variant)))
            worst_seconds, worst_peak = max(worst_seconds, seconds), max(worst_peak, peak)
            if isinstance(outcome, Exception):
                assert isinstance(outcome, gn.ModelFileError), repr(outcome)
                outcomes["refused"] += 1
            else:
                outcome.predict(inputs)
                outcomes["loaded"] += 1
    finally:
        tracemalloc.stop()
    print(f"{len(cases)} variants: {outcomes}; worst {worst_seconds:.3f} s, {worst_peak / MB:.1f} MB")
    assert outcomes["refused"] > 1200 and outcomes["loaded"] > 0
    assert worst_peak < 100 * MB and worst_seconds < 1.0, (worst_seconds, worst_peak)
