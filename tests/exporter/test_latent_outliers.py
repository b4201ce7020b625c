"""The latent space read by row blocks: outlier quantiles, bit-identical sources, streaming validation."""

from __future__ import annotations

import warnings
from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import pandas as pd
import pytest
import zarr
from export_helpers import make_kwargs, snapshot
from scipy import sparse

from cellucid_nb.exporter import grouping, outliers
from cellucid_nb.exporter.latent import BLOCK_ROWS, LatentReader
from cellucid_nb.exporter.outliers import outlier_quantiles
from cellucid_nb.exporter.prepare import prepare


def _straightforward(latent: np.ndarray, codes: np.ndarray, n_categories: int, min_points: int) -> np.ndarray:
    """The definition, one category at a time: numpy mean, np.linalg.norm, rank by counting."""
    out = np.full(codes.shape[0], np.nan, dtype=np.float32)
    for c in range(n_categories):
        cells = np.flatnonzero(codes == c)
        if cells.size < min_points:
            continue
        pts = latent[cells].astype(np.float64)
        centre = pts.mean(axis=0).astype(np.float32)
        if not np.isfinite(centre).all():
            continue  # NaN / Inf in the category: NaN for all its cells (the validation warning says so)
        dist = np.linalg.norm(pts - centre, axis=1).astype(np.float32)
        rank = (dist[None, :] <= dist[:, None]).sum(axis=1)
        out[cells] = rank.astype(np.float32) / np.float32(cells.size)
    return out


def _data(n: int = 2500, seed: int = 3) -> tuple[np.ndarray, list[tuple[np.ndarray, int]]]:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 6)).astype(np.float32)
    codes_a = rng.integers(-1, 7, size=n).astype(np.int8)  # -1: missing
    codes_a[codes_a == 6] = 5
    codes_a[:3] = 6  # category 6: 3 cells, under min_points
    # ties: a category's cells copied onto each other share their distance
    fives = np.flatnonzero(codes_a == 5)
    latent[fives[1::2]] = latent[fives[0]]
    codes_b = rng.integers(0, 40, size=n).astype(np.int16)
    latent[np.flatnonzero(codes_b == 7)[0], 2] = np.nan  # category 7 of field b gets NaN
    return latent, [(codes_a, 8), (codes_b, 41)]  # categories 7 of a and 40 of b have no cells


def test_outlier_quantiles_match_the_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    latent, fields = _data()
    monkeypatch.setattr(outliers, "BLOCK_ROWS", 300)  # several row blocks
    monkeypatch.setattr(outliers, "_RANK_CHUNK", 17)  # ranks looked up in several chunks
    monkeypatch.setattr(grouping, "BLOCK_ROWS", 450)  # cells grouped in several blocks
    got = outlier_quantiles(latent, fields, min_points=10)
    for (codes, k), quantiles in zip(fields, got, strict=True):
        expected = _straightforward(latent, codes, k, 10)
        np.testing.assert_array_equal(quantiles, expected)
    a, b = got
    assert np.isnan(a[fields[0][0] < 0]).all() and np.isnan(a[:3]).all()  # missing codes, category under min_points
    assert np.isnan(b[fields[1][0] == 7]).all() and not np.isnan(b[fields[1][0] != 7]).any()
    fives = np.flatnonzero(fields[0][0] == 5)
    tied = np.concatenate([fives[:1], fives[1::2]])
    assert np.unique(a[tied]).size == 1 and a[tied][0] >= tied.size / fives.size  # ties share the top rank


def test_sources_give_bit_identical_outliers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    latent, fields = _data(n=3001)
    monkeypatch.setattr(outliers, "BLOCK_ROWS", 256)
    with h5py.File(tmp_path / "latent.h5", "w") as f:
        f.create_dataset("X_pca", data=latent, chunks=(100, 6))
    z = zarr.open_array(str(tmp_path / "latent.zarr"), mode="w", shape=latent.shape, chunks=(333, 6), dtype=latent.dtype)
    z[:] = latent
    reference = outlier_quantiles(latent, fields, 10)
    with h5py.File(tmp_path / "latent.h5", "r") as f:
        sources = {
            "h5py": f["X_pca"], "dask": da.from_array(latent, chunks=(700, 3)), "zarr": z,
            "csr": sparse.csr_matrix(latent), "fortran": np.asfortranarray(latent),
        }
        for name, source in sources.items():
            for got, want in zip(outlier_quantiles(source, fields, 10), reference, strict=True):
                assert got.tobytes() == want.tobytes(), name


def _export(tmp_path: Path, name: str, latent: object) -> dict[str, bytes]:
    kw = make_kwargs(n=1500)
    kw["latent_space"] = latent
    files = snapshot(prepare(out_dir=tmp_path / name, **kw).path)
    return {rel: data for rel, data in files.items() if ".outliers." in rel}


def test_exports_from_numpy_h5py_and_dask_have_the_same_outlier_payloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outliers, "BLOCK_ROWS", 200)
    latent = make_kwargs(n=1500)["latent_space"]
    in_memory = _export(tmp_path, "numpy", latent)
    assert len(in_memory) == 3  # cluster, flag, batch
    with h5py.File(tmp_path / "latent.h5", "w") as f:
        f["X_pca"] = latent
    with h5py.File(tmp_path / "latent.h5", "r") as f:
        assert _export(tmp_path, "h5py", f["X_pca"]) == in_memory
    assert _export(tmp_path, "dask", da.from_array(latent, chunks=(333, 5))) == in_memory


class _Tracked:
    """A lazily sliced array that refuses to be read whole and records what was read."""

    def __init__(self, values: np.ndarray) -> None:
        self._values = values
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim
        self.rows_read = 0

    def __getitem__(self, key: slice) -> np.ndarray:
        assert isinstance(key, slice) and key.stop - key.start <= BLOCK_ROWS, key
        self.rows_read += key.stop - key.start
        return self._values[key]

    def __array__(self, *args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the latent space was read whole")


def test_latent_is_read_by_row_blocks_only(tmp_path: Path) -> None:
    n = BLOCK_ROWS + 1000
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({k: pd.Categorical(rng.integers(0, 4, n)) for k in ("a", "b", "c")})
    tracked = _Tracked(rng.normal(size=(n, 4)))
    out = prepare(out_dir=tmp_path / "t", latent_space=tracked, obs=obs, X_umap_2d=rng.normal(size=(n, 2))).path
    assert tracked.rows_read == 3 * n  # validation, then sums and distances of every categorical field at once
    assert len(list((out / "obs").glob("*.outliers.*"))) == 3


def test_the_passes_stop_when_asked() -> None:
    n = BLOCK_ROWS + 10
    tracked = _Tracked(np.zeros((n, 2)))
    answers = iter([False, True, True])  # pass 1: one block, then stop; pass 2: stop at once
    outliers.latent_distances(LatentReader.open(tracked), [(np.zeros(n, dtype=np.int8), 1)], 10, lambda: next(answers))
    assert tracked.rows_read == BLOCK_ROWS  # one block of pass 1, then the stop was seen


def test_streaming_validation_keeps_the_messages(tmp_path: Path) -> None:
    kw = make_kwargs()
    latent = kw["latent_space"].copy()
    latent[65, 1] = 1e300
    latent[7, 0] = -3e39
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["big"], f["short"] = latent, latent[:-1]
        nan = kw["latent_space"].astype(np.float32)
        nan[4, 4] = np.nan
        f["nan"] = nan
    with h5py.File(tmp_path / "bad.h5", "r") as f:
        with pytest.raises(ValueError, match=r"latent_space has 2 finite values beyond float32's range \(largest \|value\| 1e\+300\)"):
            prepare(out_dir=tmp_path / "a", **{**kw, "latent_space": f["big"]})
        with pytest.raises(ValueError, match=r"latent_space has shape \(299, 5\), but embeddings have 300 cells"):
            prepare(out_dir=tmp_path / "b", **{**kw, "latent_space": f["short"]})
        with pytest.warns(UserWarning, match="latent_space contains NaN or Inf"):
            prepare(out_dir=tmp_path / "c", **{**kw, "latent_space": f["nan"]})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match=r"latent_space has shape \(300, 5, 1\)"):
        prepare(out_dir=tmp_path / "d", **{**kw, "latent_space": da.from_array(kw["latent_space"][:, :, None])})
    with pytest.raises(TypeError, match="latent_space has dtype <U1, expected a numeric array"):
        prepare(out_dir=tmp_path / "e", **{**kw, "latent_space": np.full((300, 2), "a")})


def test_reader_blocks_are_float32_views_of_float32_arrays() -> None:
    values = np.arange(20, dtype=np.float32).reshape(10, 2)
    reader = LatentReader.open(values)
    blocks = list(reader.blocks(4))
    assert [start for start, _ in blocks] == [0, 4, 8] and all(np.shares_memory(b, values) for _, b in blocks)
    column = LatentReader.open(pd.Series(np.arange(5)).to_numpy())
    assert column.shape == (5, 1) and next(column.blocks())[1].dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(next(LatentReader.open(da.from_array(values, chunks=3)).blocks(7))[1], values[:7])
