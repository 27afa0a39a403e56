"""The fast paths of conversion and decompression give exactly what the plain paths give:
libtiff decoding of whole pages and of strip ranges against tifffile, and the chunk
writes that run behind the computing threads."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from conftest import random_volume
from scrollzarr import chunkio, decode, slices, store
from scrollzarr.convert import Options, convert

LAYOUTS = list(itertools.product(
    [np.uint8, np.uint16, np.int16, np.uint32, np.float32],
    ["lzw", "zlib", "adobe_deflate"],
    [False, True],  # predictor (horizontal; floating point for float32)
    ["<", ">"],
    [None, 7],  # rows per strip: one strip, or many with a short last one
))


def _image(dtype, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    image = rng.integers(0, 50, (61, 53)).astype(dtype)
    # a noisy band (little compression) between smooth parts (much)
    high = info.max if info is not None and info.max < 1 << 31 else 1 << 20
    image[10:40] = rng.integers(0, high, (30, 53)).astype(dtype)
    if info is None:
        image[20:25] = rng.standard_normal((5, 53)).astype(dtype)
    return image


@pytest.mark.parametrize("dtype,compression,predictor,byteorder,rows_per_strip", LAYOUTS)
def test_libtiff_decoding_equals_tifffile_for_pages_and_row_ranges(
        tmp_path, dtype, compression, predictor, byteorder, rows_per_strip):
    image = _image(dtype)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, image, compression=compression, predictor=predictor,
                     byteorder=byteorder, rowsperstrip=rows_per_strip,
                     photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert decode._libtiff_can(page)  # the fast path is the one tested here
        whole = decode.decode_page(tif)
        assert whole.dtype == np.dtype(dtype) and whole.dtype.isnative
        np.testing.assert_array_equal(whole, image)
        for y0, y1 in [(0, 61), (0, 1), (60, 61), (6, 8), (7, 14), (13, 47), (5, 5)]:
            rows = decode.decode_rows(tif, page, y0, y1)
            np.testing.assert_array_equal(rows, image[y0:y1], err_msg=f"rows {y0}:{y1}")


@pytest.mark.parametrize("kwargs", [
    {"compression": "zstd"}, {"compression": "lzw", "tile": (16, 16)},
    {"compression": "packbits"},
])
def test_layouts_libtiff_is_not_used_for_still_decode_through_tifffile(tmp_path, kwargs):
    image = _image(np.uint8)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, image, **kwargs)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert not decode._libtiff_can(page)
        np.testing.assert_array_equal(decode.decode_page(tif), image)
        np.testing.assert_array_equal(decode.decode_rows(tif, page, 9, 33), image[9:33])


def test_min_is_white_lzw_keeps_the_stored_values_as_tifffile_does(tmp_path):
    image = _image(np.uint16)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, image, compression="lzw", photometric="miniswhite")
    with tifffile.TiffFile(path) as tif:
        assert decode._libtiff_can(tif.pages.first)
        np.testing.assert_array_equal(decode.decode_page(tif), tif.pages.first.asarray())
        np.testing.assert_array_equal(decode.decode_page(tif), image)


@pytest.mark.parametrize("dtype,byteorder", [(np.uint16, ">"), (np.float32, "<")])
def test_read_rows_of_lzw_slices_into_a_slab_equal_tifffile_whole_strips_or_not(
        tmp_path, dtype, byteorder):
    image = _image(dtype)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, image, compression="lzw", predictor=True, byteorder=byteorder,
                     rowsperstrip=7, photometric="minisblack")
    slab = np.full((2, 61, 53), 99, dtype=dtype)
    for y0, y1 in [(0, 61), (7, 21), (6, 8), (56, 61), (3, 3)]:
        got = slices.read_rows(path, y0, y1, out=slab[1, :y1 - y0])
        np.testing.assert_array_equal(got, image[y0:y1], err_msg=f"rows {y0}:{y1}")
        np.testing.assert_array_equal(slab[1, :y1 - y0], image[y0:y1])
        np.testing.assert_array_equal(slices.read_rows(path, y0, y1), image[y0:y1])
    assert (slab[0] == 99).all()  # nothing written beside the rows asked for


def test_strips_scattered_through_the_file_are_read_one_by_one(tmp_path):
    image = _image(np.uint16)
    path, moved = tmp_path / "s.tif", tmp_path / "moved.tif"
    tifffile.imwrite(path, image, compression="lzw", rowsperstrip=5)
    with tifffile.TiffFile(path) as tif:
        layout = decode.strip_layout(tif, tif.pages.first)
    data = bytearray(path.read_bytes())
    offsets = {}
    for i in reversed(range(len(layout.offsets))):  # last strip first, gaps between
        data += b"\0" * (i + 3)
        offsets[i] = len(data)
        data += path.read_bytes()[layout.offsets[i]:layout.offsets[i] + layout.counts[i]]
    moved.write_bytes(bytes(data))
    layout = dataclasses.replace(layout, offsets=tuple(offsets[i] for i in sorted(offsets)))
    with open(moved, "rb") as f:
        for y0, y1 in [(0, 61), (4, 17), (10, 15)]:
            out = np.empty((y1 - y0, 53), np.uint16)
            decode.decode_strip_rows(f.fileno(), layout, y0, y1, out)
            np.testing.assert_array_equal(out, image[y0:y1])


def test_lzw_slices_convert_to_the_same_chunk_files_as_raw_slices(tmp_path):
    vol = random_volume((12, 70, 45), seed=21)
    vol[:, :20] = 0  # masked rows: all-zero chunks stay off disk in both
    raw, lzw = tmp_path / "raw", tmp_path / "lzw"
    for directory, kwargs in ((raw, {}), (lzw, {"compression": "lzw", "predictor": True,
                                                "rowsperstrip": 6})):
        directory.mkdir()
        for z, plane in enumerate(vol):
            tifffile.imwrite(directory / f"{z:05d}.tif", plane, **kwargs)
    outs = []
    for directory in (raw, lzw):
        out = tmp_path / f"{directory.name}.zarr"
        # a small budget: bands of a few rows, so strips are decoded in part
        convert(directory, out, Options(chunk_size=8, nlevels=3, max_gb=0.0002, quiet=True))
        outs.append(out)
    files = [{p.relative_to(o): p.read_bytes() for o in [out] for p in o.rglob("*")
              if p.is_file() and p.parent != o} for out in outs]
    assert files[0] and files[0] == files[1]
    np.testing.assert_array_equal(zarr.open_array(str(outs[1] / "0"), mode="r")[:], vol)


def _raw_level(path: Path, shape, chunks) -> chunkio.RawLevel:
    store.create_array(str(path), shape, chunks, np.uint16)
    level = chunkio.open_level(str(path))
    assert isinstance(level, chunkio.RawLevel)
    return level


def test_queued_chunk_writes_are_on_disk_after_flush_even_with_a_one_chunk_queue(
        tmp_path):
    chunkio.set_write_behind(0)  # at most one chunk queued
    chunkio.forget()
    data = random_volume((8, 24, 20), seed=22)
    data[:, 8:16] = 0  # an all-zero chunk row: never written
    level = _raw_level(tmp_path / "a", data.shape, 8)
    level.write(0, 0, data)
    chunkio.flush()
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"), mode="r")[:], data)
    names = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*")
                   if p.is_file() and not p.name.startswith("."))
    assert names == [f"0/{y}/{x}" for y in (0, 2) for x in (0, 1, 2)]
    assert chunkio._queued_bytes == 0


def test_a_failed_queued_write_is_raised_by_flush_and_leaves_no_partial_file(tmp_path):
    chunkio.forget()
    data = random_volume((4, 4, 4), seed=23) + 1
    level = _raw_level(tmp_path / "b", data.shape, 4)
    blocker = tmp_path / "b" / "0" / "0" / "0"
    blocker.mkdir(parents=True)  # a directory where the chunk file must go
    (blocker / "x").write_bytes(b"keep")
    level.write(0, 0, data)
    with pytest.raises(OSError):
        chunkio.flush()
    assert not [p for p in (tmp_path / "b").rglob("*") if p.name.endswith(chunkio.PARTIAL)]
    assert (blocker / "x").read_bytes() == b"keep"
    chunkio.flush()  # the error was reported once; nothing is left queued
    assert chunkio._queued_bytes == 0


def _deep_job(nz: int, size: int = 2048, algorithm: str = "mean"):
    from scrollzarr import plan as planning, pyramid
    from scrollzarr.sources import SliceSource

    shapes = [(nz, size, size)]
    for _ in range(5):
        shapes.append(pyramid.reduced_shape(shapes[-1]))
    source = SliceSource("/nonexistent", (nz - 1,), ("/nonexistent/slice.tif",), size,
                         size, "<u2")  # planning reads no file
    return planning.Job(source=source, arrays=tuple(f"/nonexistent/{i}" for i in range(6)),
                        shapes=tuple(shapes), algorithms=("none",) + (algorithm,) * 5,
                        chunk=128, dtype="<u2", filled=tuple((0, s[0]) for s in shapes))


def test_level0_tasks_write_level2_too_where_every_thread_gets_two_of_them():
    """Level 1 is then never read back (1/8 of the input's bytes); small scrolls, tight
    budgets and a gaussian level 2 (which needs level 1 around the task) keep two."""
    from scrollzarr import plan as planning

    big = planning.make_plan(_deep_job(256), 0, 8 * 2**30, 2)
    assert list(big.written(0)) == [0, 1, 2] and len(big.levels[0]) >= 4
    assert 1 not in big.levels and 2 not in big.levels  # no stage reads level 0 or 1
    assert list(planning.make_plan(_deep_job(256), 0, 8 * 2**30, 1).written(0)) == [0, 1, 2]
    # one 512-voxel task per z slab: fewer than two per thread
    small = planning.make_plan(_deep_job(256, size=512), 0, 8 * 2**30, 2)
    assert list(small.written(0)) == [0, 1]
    tight = planning.make_plan(_deep_job(256), 0, 0.25 * 2**30, 2)
    assert list(tight.written(0)) == [0, 1] and tight.bands[0][2] == 2
    gaussian = planning.make_plan(_deep_job(256, algorithm="gaussian"), 0, 8 * 2**30, 2)
    assert list(gaussian.written(0)) == [0, 1]


def test_task_memory_does_not_grow_with_the_depth_of_the_scroll():
    from scrollzarr import plan as planning

    def largest(nz: int) -> tuple[float, int]:
        """(working memory, bytes of slices held at once) of the largest task"""
        job = _deep_job(nz)
        plan = planning.make_plan(job, 0, 8 * 2**30, 2)
        memory = held = 0
        for task in plan.tasks:
            rows = task.y[1] - task.y[0]
            memory = max(memory, planning._task_memory(job, task.level, task.top, rows)[0])
            (z0, z1), (y0, y1) = planning.source_region(job, task)
            nx = job.shapes[max(task.level - 1, 0)][2]
            if task.level == 0:  # streamed: a chunk of planes and a chunk row at a time
                held = max(held, min(job.chunk, z1 - z0) * nx * 2 * planning._rows_per_read(
                    job, 0, task.top, y1 - y0))
            else:
                held = max(held, (z1 - z0) * (y1 - y0) * nx * 2)
        return memory, held

    # beyond the depth of one task (4 chunks in a three-level stage) nothing grows; below
    # it only the task's level 2 is smaller
    (shallow, shallow_held), (deep, deep_held) = largest(1024), largest(4096)
    assert deep == shallow
    assert largest(256)[0] >= 0.9 * deep
    assert max(deep_held, shallow_held) <= planning.MAX_TASK_BYTES


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_writes_chunks_with_its_own_writer_threads(tmp_path):
    import os

    chunkio.forget()
    data = random_volume((4, 4, 4), seed=24) + 1
    _raw_level(tmp_path / "parent", data.shape, 4).write(0, 0, data)
    chunkio.flush()  # the parent's writer threads exist now
    pid = os.fork()
    if pid == 0:  # the child: must not wait for the parent's threads
        code = 1
        try:
            chunkio.forget()
            _raw_level(tmp_path / "child", data.shape, 4).write(0, 0, data)
            chunkio.flush()
            code = 0 if (tmp_path / "child" / "0" / "0" / "0").is_file() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_write_behind_queue_comes_out_of_a_large_budget_and_not_a_small_one():
    from scrollzarr import plan as planning

    job = _deep_job(256)
    large = planning.make_plan(job, 0, 8 * 2**30, 2)
    assert large.write_behind == chunkio.WRITE_BEHIND_BYTES
    assert large.bands == planning.make_plan(job, 0, 8 * 2**30 - large.write_behind, 2).bands
    small = planning.make_plan(job, 0, 0.5 * 2**30, 2)
    assert small.write_behind == 0


@pytest.mark.parametrize("algorithm", ["mean", "nearest", "gaussian", "max", "mode"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32])
def test_downsample_into_a_strided_out_equals_the_plain_result(algorithm, dtype):
    from scrollzarr import pyramid

    block = random_volume((13, 22, 35), seed=4, dtype=np.uint16, high=250).astype(dtype)
    context = ((2, 2), (0, 2), (0, 0)) if algorithm == "gaussian" else ((0, 0),) * 3
    want = pyramid.downsample(block, algorithm, context)
    room = np.full((want.shape[0] + 2, want.shape[1] + 3, want.shape[2]), 7, dtype)
    out = room[1:1 + want.shape[0], 2:2 + want.shape[1]]  # not contiguous
    got = pyramid.downsample(block, algorithm, context, out=out)
    assert got is out
    np.testing.assert_array_equal(out, want)
    assert (room[0] == 7).all() and (room[:, :2] == 7).all()  # nothing outside out
    with pytest.raises(ValueError, match="out is"):
        pyramid.downsample(block, algorithm, context, out=room)


def test_the_mean_of_uint16_equals_the_exact_rounded_mean_in_cache_sized_steps():
    from scrollzarr import pyramid

    # planes of 1 MiB: one plane pair per step; odd edges on every axis
    block = random_volume((7, 257, 2049), seed=5)
    padded = np.pad(block, [(0, n % 2) for n in block.shape], mode="edge").astype(np.int64)
    z, y, x = padded.shape
    total = padded.reshape(z // 2, 2, y // 2, 2, x // 2, 2).sum(axis=(1, 3, 5))
    want = np.round(total / 8.0).astype(np.uint16)  # numpy rounds half to even
    np.testing.assert_array_equal(pyramid.downsample(block, "mean"), want)


def test_a_level0_task_reads_one_chunk_row_of_slices_at_a_time_whatever_its_band():
    from scrollzarr import plan as planning

    job = _deep_job(256)
    plan = planning.make_plan(job, 0, 8 * 2**30, 2)
    band = plan.bands[0][0]
    assert band > job.chunk  # the band holds several chunk rows ...
    # ... but a task holds one chunk row of slices at a time
    assert planning._rows_per_read(job, 0, plan.bands[0][1], band) == job.chunk
