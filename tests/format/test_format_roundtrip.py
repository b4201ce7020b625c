"""Round trips: inputs → our prepare() → read_export() give back the inputs (within half a step)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from format_handmade import normalise
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from make_fixtures import make_inputs
from scipy import sparse

from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format.codecs import QUANT_MAX
from cellucid_nb.format.reader import read_export
from cellucid_nb.format.validator import format_problems, validate_export

N = 40


def _tolerance(truth: np.ndarray, bits: int | None) -> float:
    """Half a quantization step over the finite range, plus float32 rounding."""
    finite = truth[np.isfinite(truth)]
    if finite.size == 0:
        return 0.0
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo if hi > lo else 1.0
    float_eps = 2e-7 * max(abs(lo), abs(hi), 1.0)
    return float_eps if bits is None else span / QUANT_MAX[bits] / 2 * 1.0001 + float_eps


def _assert_close(decoded: np.ndarray, truth: np.ndarray, bits: int | None, what: str) -> None:
    truth = np.asarray(truth, dtype=np.float64)
    ok = np.isfinite(truth)
    assert np.array_equal(np.isnan(decoded), ~ok), f"{what}: missing values not preserved"
    err = np.abs(decoded[ok].astype(np.float64) - truth[ok])
    assert err.size == 0 or err.max() <= _tolerance(truth, bits), f"{what}: max error {err.max()} (bits={bits})"


def _expected_edges(matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges of A + Aᵀ without the diagonal, src < dst, sorted."""
    sym = sparse.triu(sparse.csr_matrix(matrix + matrix.T), k=1).tocoo()
    keep = sym.data != 0
    order = np.lexsort((sym.col[keep], sym.row[keep]))
    return sym.row[keep][order], sym.col[keep][order], sym.data[keep][order]


def check_round_trip(out, inputs: dict, *, obs_bits=None, var_bits=None, codes_dtype="auto", gene_ids=None) -> None:
    """Read an export back and compare every part with the inputs it was made from."""
    problems = validate_export(out)
    assert problems == [], format_problems(problems)
    r = read_export(out)
    dims = sorted(d for d in (1, 2, 3) if f"X_umap_{d}d" in inputs)
    assert r.dimensions == dims and r.default_dimension == max(dims) and r.n_cells == N
    scales = {}
    for d in dims:
        raw = inputs[f"X_umap_{d}d"]
        pts = r.points(d)
        np.testing.assert_allclose(pts, normalise(raw), atol=2e-6)
        assert pts.min() >= -1 - 1e-6 and pts.max() <= 1 + 1e-6
        assert np.isclose(np.ptp(pts, axis=0).max(), 2.0, atol=1e-5)  # the largest axis fills [-1, 1]
        scales[d] = 2.0 / np.ptp(raw.astype(np.float64), axis=0).max()

    obs = inputs["obs"]
    assert r.obs_keys == ["score", "n_counts", "cell type", "is_good", "batch"]
    for key in ("score", "n_counts"):
        _assert_close(r.obs_column(key).to_numpy(), obs[key].to_numpy(np.float64), obs_bits, f"obs[{key!r}]")
    for key in ("cell type", "is_good", "batch"):
        col = r.obs_column(key)
        source = obs[key].astype("category")
        assert list(col.cat.categories) == [str(c) for c in source.cat.categories]
        np.testing.assert_array_equal(col.cat.codes.to_numpy(), source.cat.codes.to_numpy())
        info = r.obs_field_info(key)
        assert info.dtype == ("uint16" if codes_dtype == "uint16" else "uint8")
    assert r.obs_column("cell type").isna().sum() == 1 and r.obs_column("score").isna().sum() == 1

    expression = inputs["gene_expression"].toarray()
    index = {g: j for j, g in enumerate(inputs["var"].index)}
    assert r.genes == list(gene_ids or inputs["var"].index)
    for gene in r.genes:
        _assert_close(r.gene(gene), expression[:, index[gene]], var_bits, f"gene {gene!r}")
        assert r.gene_info(gene)[2] == var_bits

    if "connectivities" in inputs:
        src, dst, weights = r.edges()
        e_src, e_dst, e_w = _expected_edges(inputs["connectivities"])
        np.testing.assert_array_equal(src, e_src)
        np.testing.assert_array_equal(dst, e_dst)
        np.testing.assert_allclose(weights, e_w, rtol=1e-12)

    fields = inputs.get("vector_fields") or {}
    for name, values in fields.items():
        explicit = name[-3:] in ("_1d", "_2d", "_3d")
        fid, dim = (name[:-3], int(name[-2])) if explicit else (name, values.shape[1])
        if dim not in dims or (not explicit and f"{fid}_{dim}d" in fields):
            continue  # skipped: no embedding of that dimension, or an explicit key wins
        assert r.vector_fields[fid]["basis"] == "umap"
        np.testing.assert_allclose(r.vector_field(fid, dim), values * scales[dim], rtol=1e-5, atol=1e-7)


def _export(tmp_path, inputs, **options):
    out = tmp_path / "export"
    prepare(out_dir=out, force=True, created_at="2024-01-01T00:00:00Z", **copy.deepcopy(inputs), **options)
    return out


# Pairwise coverage of the option values (each value of each option appears with several others).
COMBOS = [
    # obs bits, var bits, compression, codes dtype, dims
    (None, None, None, "auto", (1, 2, 3)),
    (8, 8, 1, "uint8", (2,)),
    (16, 16, 6, "uint16", (3,)),
    (8, 16, 9, "auto", (1,)),
    (16, None, None, "uint8", (2, 3)),
    (None, 8, 6, "uint16", (1, 2)),
    (8, None, 0, "uint16", (1, 3)),
    (None, 16, 1, "auto", (2,)),
    (16, 8, 9, "uint8", (1, 2, 3)),
]


@pytest.mark.parametrize("obs_bits,var_bits,compression,codes_dtype,dims", COMBOS)
def test_round_trip_option_combinations(tmp_path, obs_bits, var_bits, compression, codes_dtype, dims):
    inputs = make_inputs(n_cells=N, seed=sum(dims), dims=dims)
    out = _export(tmp_path, inputs, obs_continuous_quantization=obs_bits, var_quantization=var_bits,
                  compression=compression, obs_categorical_dtype=codes_dtype)
    suffixes = {p.name.endswith(".gz") for p in out.rglob("*.bin*")}
    assert suffixes == {bool(compression)}
    check_round_trip(out, inputs, obs_bits=obs_bits, var_bits=var_bits, codes_dtype=codes_dtype)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    obs_bits=st.sampled_from([None, 8, 16]),
    var_bits=st.sampled_from([None, 8, 16]),
    compression=st.sampled_from([None, 1, 6, 9]),
    codes_dtype=st.sampled_from(["auto", "uint8", "uint16"]),
    dims=st.sets(st.sampled_from([1, 2, 3]), min_size=1).map(lambda s: tuple(sorted(s))),
    connectivity=st.booleans(),
)
def test_round_trip_random_options(tmp_path_factory, seed, obs_bits, var_bits, compression, codes_dtype, dims,
                                   connectivity):
    inputs = make_inputs(n_cells=N, seed=seed, dims=dims, connectivity=connectivity)
    out = _export(tmp_path_factory.mktemp("h"), inputs, obs_continuous_quantization=obs_bits,
                  var_quantization=var_bits, compression=compression, obs_categorical_dtype=codes_dtype)
    check_round_trip(out, inputs, obs_bits=obs_bits, var_bits=var_bits, codes_dtype=codes_dtype)


def test_gene_subset_keeps_the_requested_order(tmp_path):
    inputs = make_inputs(n_cells=N, seed=5)
    genes = ["LYZ", "HLA-A/B", "CD3E"]
    out = _export(tmp_path, inputs, var_quantization=8, gene_identifiers=genes)
    check_round_trip(out, inputs, var_bits=8, gene_ids=genes)
    assert read_export(out).identity["stats"]["n_genes"] == 3


def test_explicit_vector_key_wins_over_implicit(tmp_path):
    inputs = make_inputs(n_cells=N, seed=6, dims=(2,), vectors=False)
    rng = np.random.default_rng(0)
    explicit, implicit = rng.normal(size=(N, 2)).astype(np.float32), rng.normal(size=(N, 2)).astype(np.float32)
    inputs["vector_fields"] = {"velocity_umap_2d": explicit, "velocity_umap": implicit,
                               "flow_umap": rng.normal(size=(N, 2)).astype(np.float32)}
    out = _export(tmp_path, inputs)
    check_round_trip(out, inputs)
    r = read_export(out)
    scale = 2.0 / np.ptp(inputs["X_umap_2d"].astype(np.float64), axis=0).max()
    np.testing.assert_allclose(r.vector_field("velocity_umap", 2), explicit * scale, rtol=1e-5)
    assert sorted(r.vector_fields) == ["flow_umap", "velocity_umap"]
    assert r.identity["vector_fields"]["default_field"] == "velocity_umap"


def test_nan_inf_and_constant_fields(tmp_path):
    inputs = make_inputs(n_cells=N, seed=7, dims=(2,), connectivity=False, vectors=False)
    obs = inputs["obs"]
    obs["score"] = np.where(np.arange(N) % 7 == 0, np.inf, obs["score"])
    obs["score"] = obs["score"].where(np.arange(N) % 5 != 0)
    obs["n_counts"] = 3.0  # constant: stored with max = min + 1
    out = _export(tmp_path, inputs, obs_continuous_quantization=8)
    r = read_export(out)
    score = r.obs_column("score").to_numpy()
    assert np.isnan(score[np.arange(N) % 7 == 0]).all() and np.isnan(score[np.arange(N) % 5 == 0]).all()
    info = r.obs_field_info("n_counts")
    assert info.max > info.min
    np.testing.assert_allclose(r.obs_column("n_counts").to_numpy(), 3.0, atol=1e-6)
    assert validate_export(out) == []


def test_all_missing_categorical(tmp_path):
    inputs = make_inputs(n_cells=N, seed=8, dims=(2,), connectivity=False, vectors=False)
    inputs["obs"]["cell type"] = pd.Categorical([None] * N, categories=["a", "b"])
    out = _export(tmp_path, inputs)
    col = read_export(out).obs_column("cell type")
    assert col.isna().all() and list(col.cat.categories) == ["a", "b"]
    assert validate_export(out) == []


def test_more_than_254_categories_use_uint16(tmp_path):
    inputs = make_inputs(n_cells=N, seed=9, dims=(2,), connectivity=False, vectors=False)
    names = [f"c{i:03d}" for i in range(300)]
    codes = np.random.default_rng(1).integers(0, 300, N)
    codes[0] = 299
    inputs["obs"]["cell type"] = pd.Categorical.from_codes(codes, categories=names)
    out = _export(tmp_path, inputs, obs_categorical_dtype="auto")
    r = read_export(out)
    assert r.obs_field_info("cell type").dtype == "uint16"
    col = r.obs_column("cell type")
    assert list(col.cat.categories) == names
    np.testing.assert_array_equal(col.cat.codes.to_numpy(), codes)
    assert validate_export(out) == []


def test_custom_manifest_names_are_found_through_the_sidecar(tmp_path):
    inputs = make_inputs(n_cells=N, seed=10, dims=(2, 3))
    out = _export(tmp_path, inputs, obs_manifest_filename="cells.json", var_manifest_filename="genes.json",
                  connectivity_manifest_filename="graph.json")
    assert not (out / "obs_manifest.json").exists() and (out / "cells.json").is_file()
    check_round_trip(out, inputs)
    (out / "cells.json").write_text("{")
    found = {(p.file, p.rule) for p in validate_export(out)}
    assert found == {("cells.json", "invalid_json"), ("cellucid_nb.json", "sidecar_mismatch")}  # size changed too


def test_checksums_catch_a_same_size_change(tmp_path):
    out = _export(tmp_path, make_inputs(n_cells=N, seed=11, dims=(2,)), var_quantization=8)
    target = out / "var" / "LYZ.values.u8"
    data = bytearray(target.read_bytes())
    data[0] = (data[0] + 1) % 255  # still a valid code, same size
    target.write_bytes(bytes(data))
    assert validate_export(out) == []
    problems = validate_export(out, checksums=True)
    assert [(p.file, p.rule) for p in problems] == [("cellucid_nb.json", "sidecar_mismatch")]
    assert "var/LYZ.values.u8" in problems[0].detail
