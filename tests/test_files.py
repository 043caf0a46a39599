"""Atomic replacement (graphnet.files): a failed write leaves the old file intact."""

from __future__ import annotations

import zipfile

import pytest
from conftest import build_dag, dag_data

import graphnet as gn


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
