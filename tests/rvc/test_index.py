"""Index retrieval (kit stage 6): the faiss search, the 1/d^4 weighting and the blend, against
upstream's values for the offline runs and the real-time blocks; and index files that cannot be
used, refused by name.

Tolerances (derived here; u = 2**-24):
* squared distances: faiss sums D = 768 float32 products per distance, directly or as
  |x|^2 + |y|^2 - 2<x, y>; either way the error is bounded by the rounding of sums whose terms
  total at most (|x| + |y|)^2. Random-walk partial sums (as in synth_rounding.py) give
  0.41 sqrt(D) u (|x| + |y|)^2 per sum, plus 3 u (|x| + |y|)^2 for rounding the three terms and
  their difference; twice that for the two sides.
* neighbour ids: exact, wherever the 8th and 9th distances are further apart than twice that
  tolerance (elsewhere a rounding could swap them legitimately; the kit's closest gap is far
  larger, and the test says so if a kit ever is not).
* the blend from the kit's own neighbours: the same float32 operations in the same order as
  upstream (numpy element-wise, a sequential 8-term sum), so a few u at most: 11 u * rate *
  sum_k w_k |v_k| + 2 u |feats| (8 additions, the weight, the two products and the sum).
* the blend from our own search: a relative error e_k in distance k moves w_k = s_k^-2 / sum by
  at most 2 w_k (e_k + sum_j w_j e_j), so the retrieved vector by sum_k |dw_k| |v_k|.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from tests.rvc.index_rounding import (
    blend_rounding_tolerance,
    distance_tolerance,
    searched_blend_tolerance,
)
from tests.rvc.kit import rvc_kit_dir
from tests.rvc.kit_tables import offline_runs, stream_blocks, stream_settings
from voicegui.voices.rvc.index import NEIGHBOURS, FeatureIndex, FeatureIndexError, apply_index

U = 2.0**-24


def _kit_module(kit):
    spec = importlib.util.spec_from_file_location(
        "rvc_kit_make_checkpoints", kit / "make_checkpoints.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _index_runs():
    """(offline tags with an index blend, stream block prefixes with an index blend)."""
    kit = rvc_kit_dir()
    if not (kit / "expected.npz").is_file():
        return [], []
    with np.load(kit / "expected.npz") as f:
        names = dict.fromkeys(f.files)
    tags = [t for t in offline_runs(kit) if f"{t}_index_ix" in names]
    blocks = [
        b for s in stream_settings(kit) for b in stream_blocks(names, s) if b + "index_ix" in names
    ]
    return tags, blocks


INDEX_TAGS, INDEX_BLOCKS = _index_runs()


@pytest.fixture(scope="module")
def index(rvc_assets) -> FeatureIndex:
    files = sorted((rvc_assets / "indices").glob("*.index"))
    assert files, "the kit's script wrote no index"
    return FeatureIndex.load(files[0])


def _queries(E: dict, name: str) -> np.ndarray:
    """The rows upstream searched: all offline features; a block's features with the last frame
    repeated, from skip_head // 2."""
    if name in INDEX_TAGS:
        return E[f"{name}_feats"][0]
    stream = name.split("_")[0]
    skip_head = int(stream_settings(rvc_kit_dir())[stream]["skip_head"])
    feats = E[name + "feats"][0]
    return np.concatenate([feats, feats[-1:]])[skip_head // 2 :]


def _key(name: str, what: str) -> str:
    return f"{name}_{what}" if name in INDEX_TAGS else name + what


def _rate(name: str) -> float:
    kit = rvc_kit_dir()
    if name in INDEX_TAGS:
        return float(offline_runs(kit)[name]["index_rate"])
    return float(stream_settings(kit)[name.split("_")[0]]["index_rate"])


def test_vectors_are_the_kit_rule(rvc_kit, index):
    """reconstruct_n gives the vectors in id order, as the kit's rule builds them."""
    vectors, _, _ = _kit_module(rvc_kit).index_vectors(_kit_module(rvc_kit).DEFAULT_BASE_SEED)
    assert np.array_equal(index.vectors, vectors)


@pytest.mark.parametrize("name", INDEX_TAGS + INDEX_BLOCKS)
def test_search_matches_upstream(rvc_expected, index, name):
    E = rvc_expected
    queries = _queries(E, name)
    score, ix = index.search(queries, NEIGHBOURS + 1)  # the 9th tells how close a swap was
    kit_ix, kit_score = E[_key(name, "index_ix")], E[_key(name, "index_score")]
    tol = distance_tolerance(queries, index.vectors[kit_ix])
    decided = (score[:, NEIGHBOURS] - score[:, NEIGHBOURS - 1]) > 2 * tol.max(axis=1)
    assert decided.mean() > 0.9, "the kit's neighbour sets are too close to call"
    for row in np.flatnonzero(decided):
        assert set(ix[row, :NEIGHBOURS]) == set(kit_ix[row]), f"{name} row {row}"
    # our distances (sorted, as faiss returns them) and the exact ones of the kit's neighbours
    row_tol = tol.max(axis=1, keepdims=True)
    assert np.all(
        np.abs(score[decided, :NEIGHBOURS] - np.sort(kit_score, 1)[decided]) <= row_tol[decided]
    )
    exact = np.sum((queries[:, None].astype(np.float64) - index.vectors[kit_ix]) ** 2, axis=-1)
    assert np.all(np.abs(exact - kit_score) <= tol / 2)  # one side's rounding


@pytest.mark.parametrize("name", INDEX_TAGS + INDEX_BLOCKS)
def test_blend_from_upstream_neighbours(rvc_expected, index, name):
    E, rate = rvc_expected, _rate(name)
    feats = _queries(E, name)
    score, ix = E[_key(name, "index_score")], E[_key(name, "index_ix")]
    out = apply_blend(index, feats, score, ix, rate)
    expected = _blended(E, name)
    tol = blend_rounding_tolerance(index.vectors, ix, score, feats, rate)
    assert np.all(np.abs(out - expected) <= tol), np.abs(out - expected).max()


def apply_blend(index, feats, score, ix, rate):
    from voicegui.voices.rvc.index import blend

    return blend(torch.from_numpy(feats), index.retrieve(score, ix), rate).numpy()


def _blended(E, name):
    if name in INDEX_TAGS:
        return E[f"{name}_feats_blend"][0]
    return E[name + "feats_blend_tail"][0]


@pytest.mark.parametrize("name", INDEX_TAGS + INDEX_BLOCKS)
def test_blend_end_to_end(rvc_expected, index, name):
    """Our search and blend, as the pipeline calls it (from skip_head // 2 for a block)."""
    E, rate = rvc_expected, _rate(name)
    feats = _queries(E, name)
    kit_score, kit_ix = E[_key(name, "index_score")], E[_key(name, "index_ix")]
    if name in INDEX_TAGS:
        out = apply_index(torch.from_numpy(E[f"{name}_feats"][0]), index, rate).numpy()
    else:
        full = E[name + "feats"][0]
        full = torch.from_numpy(np.concatenate([full, full[-1:]]))
        start = full.shape[0] - feats.shape[0]
        out = apply_index(full, index, rate, start).numpy()[start:]
    tol = searched_blend_tolerance(feats, index.vectors, kit_ix, kit_score, rate)
    assert np.all(np.abs(out - _blended(E, name)) <= tol), np.abs(out - _blended(E, name)).max()


def test_weights_are_inverse_fourth_power(rvc_expected, index):
    """Negative control: 1/d^2 weights (forgetting faiss returns squared distances) miss."""
    name = (INDEX_TAGS + INDEX_BLOCKS)[0]
    E, rate = rvc_expected, _rate(name)
    feats = _queries(E, name)
    score, ix = E[_key(name, "index_score")], E[_key(name, "index_ix")]
    wrong = apply_blend(index, feats, np.sqrt(score), ix, rate)
    tol = searched_blend_tolerance(feats, index.vectors, ix, score, rate)
    assert np.any(np.abs(wrong - _blended(E, name)) > tol)


def test_rate_zero_and_start_past_the_end(index):
    feats = torch.randn(5, index.dim)
    assert apply_index(feats, index, 0.0) is feats
    assert apply_index(feats, index, 0.5, start=5) is feats


# ---------------------------------------------------------------- files


def test_non_ascii_path(index, rvc_assets, tmp_path):
    src = sorted((rvc_assets / "indices").glob("*.index"))[0]
    dst = tmp_path / "Ünïcode 声.index"
    dst.write_bytes(src.read_bytes())
    assert np.array_equal(FeatureIndex.load(dst).vectors, index.vectors)


def test_damaged_and_foreign_index_files(rvc_assets, tmp_path):
    src = sorted((rvc_assets / "indices").glob("*.index"))[0].read_bytes()
    (tmp_path / "cut.index").write_bytes(src[: len(src) // 2])
    (tmp_path / "noise.index").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.index").write_bytes(b"")
    for name, pattern in [
        ("cut.index", "truncated or corrupt"),
        ("noise.index", "truncated or corrupt"),
        ("empty.index", "empty"),
        ("missing.index", "not found"),
    ]:
        with pytest.raises(FeatureIndexError, match=pattern):
            FeatureIndex.load(tmp_path / name)


def test_trained_index_without_vectors_is_named(tmp_path):
    import faiss

    rng = np.random.default_rng(0)
    index = faiss.index_factory(16, "IVF2,Flat")
    index.train(rng.standard_normal((64, 16)).astype(np.float32))
    faiss.write_index(index, str(tmp_path / "trained_IVF2.index"))
    with pytest.raises(FeatureIndexError, match="trained_.*added_"):
        FeatureIndex.load(tmp_path / "trained_IVF2.index")


def test_feature_width_mismatch_is_named(index):
    with pytest.raises(FeatureIndexError, match="768-d.*256-d|256-d.*768-d"):
        index.search(np.zeros((3, 256 if index.dim != 256 else 768), np.float32))


def test_short_list_skips_the_blend(tmp_path):
    """An IVF list with fewer than k vectors gives -1 ids: the blend is skipped (as RVC does)
    and counted."""
    import faiss

    d = 16
    centroids = np.zeros((2, d), np.float32)
    centroids[1, 0] = 100
    index = faiss.index_factory(d, "IVF2,Flat")
    faiss.extract_index_ivf(index).quantizer.add(centroids)
    index.is_trained = True
    rng = np.random.default_rng(0)
    index.add(rng.standard_normal((20, d)).astype(np.float32))  # all in list 0
    faiss.write_index(index, str(tmp_path / "added.index"))
    loaded = FeatureIndex.load(tmp_path / "added.index")
    feats = torch.zeros(3, d)
    feats[:, 0] = 100  # nearest to the empty list
    assert apply_index(feats, loaded, 0.5) is feats
    assert loaded.skipped == 1
