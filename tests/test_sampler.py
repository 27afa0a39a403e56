"""The compiled sampler's planning (scrollzarr.sampler.plan_tile): the chunks it marks
are exactly those that some in-volume sample reads (its corner, and its +1 neighbour
along an axis with a non-zero fraction), against a plain numpy reference, for random
tiles, chunk sizes (powers of two or not) and box limits."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from scrollzarr.sampler import plan_tile


def reference_chunks(base, normal, offsets, shape, chunks) -> set[tuple[int, int, int]]:
    idx = (base[None] + offsets[:, None, None] * normal[None]).reshape(-1, 3)
    last = np.asarray(shape) - 1
    idx = idx[np.all((idx >= 0) & (idx <= last), axis=1)]
    whole = np.floor(idx).astype(np.int64)
    frac = idx - whole
    found = set()
    for step in np.ndindex(2, 2, 2):
        step = np.asarray(step)
        use = np.all((step == 0) | (frac > 0), axis=1)
        cells = (whole[use] + step) // np.asarray(chunks)
        found |= {tuple(int(v) for v in c) for c in cells}
    return found


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), pixels=st.integers(1, 40),
       layers=st.integers(1, 12), interval=st.sampled_from([0.5, 1.0, 2.5, 7.0]),
       chunk=st.sampled_from([(4, 4, 4), (8, 5, 16), (3, 7, 6), (32, 32, 32)]),
       limit=st.sampled_from([None, 64, 500]))
def test_marked_chunks_are_exactly_those_the_samples_read(seed, pixels, layers, interval,
                                                          chunk, limit):
    rng = np.random.default_rng(seed)
    shape = (23, 31, 29)
    # a small patch: positions around a random centre, some beyond every face
    centre = rng.uniform(-5, np.asarray(shape) + 5)
    base = np.ascontiguousarray(centre + rng.normal(0, 4, (pixels, 3)))
    if rng.random() < 0.3:  # some samples exactly on voxel centres (zero fractions)
        base = np.ascontiguousarray(np.round(base))
    normal = rng.normal(0, 1, (pixels, 3))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    if rng.random() < 0.3:
        normal = np.round(normal)  # axis-aligned: whole steps
    normal = np.ascontiguousarray(normal)
    offsets = (np.arange(layers) - layers // 2) * interval
    groups = plan_tile(base, normal, offsets, shape, chunk, limit)
    # every (layer, pixel) sample belongs to exactly one group
    covered = np.zeros((layers, pixels), int)
    marked = set()
    for g in groups:
        covered[g.k0:g.k1, g.p0:g.p1] += 1
        if g.lo is not None:
            assert limit is None or np.prod(np.subtract(g.hi, g.lo)) <= max(limit, 8)
            for cell in zip(*np.nonzero(g.wanted)):
                marked.add(tuple(int(f + c) for f, c in zip(g.first, cell)))
    assert np.all(covered == 1)
    assert marked == reference_chunks(base, normal, offsets, shape, chunk)
