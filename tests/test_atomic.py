"""atomic.commit_many: many finished files renamed durably in one batch."""

from __future__ import annotations

import os

import pytest

from scrollzarr import atomic


def _finished(path, data: bytes) -> str:
    tmp = atomic.temporary_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
    return tmp


def test_batched_commit_leaves_every_final_file_whole_and_no_partial(tmp_path):
    (tmp_path / "b").mkdir()
    finals = [tmp_path / f"{k:02d}.tif" for k in range(20)] + [tmp_path / "b" / "s.tif"]
    finals[3].write_bytes(b"old")  # replaced, like a layer of an earlier render
    contents = [os.urandom(1000 + 37 * k) for k in range(len(finals))]
    pairs = [(_finished(p, c), p) for p, c in zip(finals, contents)]
    atomic.commit_many(pairs)
    assert [p.read_bytes() for p in finals] == contents
    assert not list(tmp_path.rglob("*" + atomic.PARTIAL))


def test_batched_commit_renames_nothing_when_a_flush_fails(tmp_path):
    finals = [tmp_path / f"{k}.tif" for k in range(5)]
    pairs = [(_finished(p, b"data"), p) for p in finals]
    os.unlink(pairs[2][0])  # a temporary file that vanished: its flush fails
    with pytest.raises(FileNotFoundError):
        atomic.commit_many(pairs)
    assert not any(p.exists() for p in finals)
    assert len(list(tmp_path.glob("*" + atomic.PARTIAL))) == 4


def test_batched_commit_of_nothing_does_nothing(tmp_path):
    atomic.commit_many([])
    assert not list(tmp_path.iterdir())
