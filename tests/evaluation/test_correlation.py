"""Tests for mmfuse.evaluation.correlation: linear CKA, CCA, per-pair tables and the heat-map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmfuse.data.preprocess import Encoded
from mmfuse.evaluation.correlation import (
    cca,
    correlation_matrix,
    linear_cka,
    modality_embeddings,
    pairwise_correlation,
    plot_correlation_heatmap,
)
from mmfuse.models import ModelConfig, build_model
from mmfuse.types import InputSpec


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


# ------------------------------------------------------------------ linear CKA
def test_cka_invariances() -> None:
    x = gaussian(300, 16, 0)
    q, _ = np.linalg.qr(gaussian(16, 16, 1))  # random orthogonal
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 7.5 * x + 3.0) == pytest.approx(1.0, abs=1e-12)  # scale and shift
    assert linear_cka(x, x[:, :8]) < 0.9  # not invariant to dropping directions


def test_cka_of_independent_noise_is_near_zero() -> None:
    assert linear_cka(gaussian(2000, 32, 0), gaussian(2000, 32, 1)) < 0.05


def test_cka_hand_computed_and_symmetric() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    y = np.array([[1.0], [0.0], [-1.0], [0.0]])  # the first coordinate of x
    # Xc^T Xc = 2 I, Yc^T Yc = [[2]], Yc^T Xc = [[2, 0]]: 4 / (2 sqrt(2) * 2) = 1 / sqrt(2)
    assert linear_cka(x, y) == pytest.approx(1 / np.sqrt(2))
    assert linear_cka(y, x) == pytest.approx(linear_cka(x, y))


def test_cka_sample_space_form_matches_feature_space_form() -> None:
    x, noise = gaussian(40, 60, 0), gaussian(40, 30, 1)  # D > N: Gram-matrix form
    y = x[:, :30] + noise
    xc, yc = x - x.mean(0), y - y.mean(0)
    direct = np.sum((yc.T @ xc) ** 2) / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert linear_cka(x, y) == pytest.approx(direct, rel=1e-10)


def test_cka_constant_representation_is_nan_and_bad_shapes_raise() -> None:
    x = gaussian(20, 3, 0)
    assert np.isnan(linear_cka(x, np.full((20, 4), 0.1)))
    assert np.isnan(linear_cka(np.zeros((20, 2)), x))
    with pytest.raises(ValueError, match="same number of rows; got 20 and 19"):
        linear_cka(x, x[:19])
    with pytest.raises(ValueError, match=r"expected two 2-D arrays"):
        linear_cka(x[:, 0], x)


# ------------------------------------------------------------------------- CCA
def test_cca_recovers_a_planted_shared_component() -> None:
    n, rng = 2000, np.random.default_rng(0)
    z = rng.normal(size=(n, 1))
    x = np.hstack([z, rng.normal(size=(n, 10))])
    mixed = z @ np.array([[2.0, -1.0, 0.5]]) + 0.05 * rng.normal(size=(n, 3))
    y = np.hstack([mixed, rng.normal(size=(n, 12))])
    rho = cca(x, y, k=5)
    assert rho.shape == (5,)
    assert rho[0] > 0.95
    assert np.all(rho[1:] < 0.2)
    assert np.all(np.diff(rho) <= 1e-12)  # descending
    assert cca(y, x, k=5) == pytest.approx(rho)  # symmetric


def test_cca_is_invariant_to_invertible_linear_maps() -> None:
    x, y = gaussian(500, 4, 0), gaussian(500, 3, 1)
    y[:, 0] += x[:, 1]
    a = gaussian(4, 4, 2) + 4 * np.eye(4)
    assert cca(x @ a, 3 * y, k=3, reg=0.0) == pytest.approx(cca(x, y, k=3, reg=0.0), abs=1e-9)
    assert cca(x @ a, 3 * y, k=3) == pytest.approx(cca(x, y, k=3), abs=1e-3)  # small ridge


def test_cca_of_independent_data_is_small() -> None:
    assert cca(gaussian(2000, 32, 0), gaussian(2000, 32, 1)).max() < 0.3


def test_cca_pca_reduction_prevents_spurious_perfect_correlation() -> None:
    x, y = gaussian(200, 100, 0), gaussian(200, 100, 1)  # D1 + D2 = N: independent, yet...
    assert cca(x, y, k=1, max_components=100)[0] > 0.99  # ...perfect without the reduction
    assert cca(x, y, k=1)[0] < 0.8  # reduced to 200 // 10 = 20 components per side (~0.6)


def test_cca_output_size_and_undefined_cases() -> None:
    x = gaussian(50, 2, 0)
    assert cca(x, gaussian(50, 3, 1), k=5).shape == (2,)
    assert np.isnan(cca(np.ones((50, 4)), x, k=2)).all()
    low_rank = gaussian(100, 2, 2) @ gaussian(2, 6, 3)  # rank 2: only two correlations exist
    rho = cca(low_rank, low_rank[:, :4], k=4)
    assert rho[:2] == pytest.approx([1.0, 1.0], abs=1e-3) and np.isnan(rho[2:]).all()
    with pytest.raises(ValueError, match="k must be at least 1; got 0"):
        cca(x, x, k=0)
    with pytest.raises(ValueError, match="max_components must be at least 1 or None; got 0"):
        cca(x, x, max_components=0)


# ------------------------------------------------------------- model and tables
SPECS = {
    "photo": InputSpec("image", (3, 8, 8)),
    "review": InputSpec("text", (6,), vocab_size=20),
    "vec": InputSpec("embedding", (5,)),
}


def tiny_encoded(n: int) -> Encoded:
    rng = np.random.default_rng(0)
    inputs = {
        "photo": rng.normal(size=(n, 3, 8, 8)).astype(np.float32),
        "review": rng.integers(0, 20, size=(n, 6)).astype(np.int64),
        "vec": rng.normal(size=(n, 5)).astype(np.float32),
    }
    mask = {m: np.ones(n, dtype=bool) for m in inputs}
    mask["photo"][:15] = False
    mask["review"][10:20] = False
    mask["vec"][: n - 8] = False  # only 8 samples: too few to pair with anything
    return Encoded(inputs, mask, np.arange(n))


def test_pairwise_correlation_on_a_model_respects_masks() -> None:
    torch.manual_seed(0)
    config = ModelConfig(
        "feature", "concat", {"photo": "cnn", "review": "gru", "vec": "mlp"}, "classification",
        2, dim=8,
    )  # fmt: skip
    model = build_model(config, SPECS)
    model.train()
    enc = tiny_encoded(60)
    emb = modality_embeddings(model, enc, batch_size=16)
    assert model.training  # mode restored
    assert {m: e.shape for m, e in emb.items()} == {m: (60, 8) for m in SPECS}
    assert not emb["photo"][:15].any() and emb["photo"][15:].any()  # zero where missing

    table = pairwise_correlation(emb, enc.mask, k=3)
    assert list(table.columns) == [
        "modality_a", "modality_b", "n", "cka", "cca_1", "cca_2", "cca_3", "cca_mean",
        "cca_null", "note",
    ]  # fmt: skip
    pairs = {(row.modality_a, row.modality_b): row for row in table.itertuples()}
    assert set(pairs) == {("photo", "review"), ("photo", "vec"), ("review", "vec")}
    assert pairs["photo", "review"].n == 40  # photo missing in 0-14, review in 10-19
    assert pairs["photo", "vec"].n == 8 and pairs["review", "vec"].n == 8
    ok = pairs["photo", "review"]
    assert 0.0 <= ok.cka <= 1.0 and 0.0 <= ok.cca_1 <= 1.0 and ok.note == ""
    assert ok.cca_mean == pytest.approx(np.nanmean([ok.cca_1, ok.cca_2, ok.cca_3]))
    few = pairs["photo", "vec"]
    assert np.isnan(few.cka) and np.isnan(few.cca_1) and np.isnan(few.cca_null)
    assert few.note == "only 8 samples with both modalities (need 10)"


def test_pairwise_correlation_notes_constant_embeddings_and_checks_inputs() -> None:
    emb = {"a": gaussian(30, 4, 0), "b": np.zeros((30, 2))}
    mask = {m: np.ones(30, dtype=bool) for m in emb}
    row = pairwise_correlation(emb, mask).iloc[0]
    assert np.isnan(row.cka) and np.isnan(row.cca_1) and row.note == "constant embedding: b"
    with pytest.raises(ValueError, match=r"same modalities; differ in \['b'\]"):
        pairwise_correlation(emb, {"a": mask["a"]})
    with pytest.raises(ValueError, match="'a': mask has 29 rows but embeddings have 30"):
        pairwise_correlation(emb, {"a": mask["a"][:29], "b": mask["b"]})


def table_of(values: dict[tuple[str, str], float]) -> pd.DataFrame:
    rows = [{"modality_a": a, "modality_b": b, "n": 50, "cka": v} for (a, b), v in values.items()]
    return pd.DataFrame(rows)


def test_correlation_matrix_is_symmetric_with_unit_diagonal() -> None:
    table = table_of({("audio", "image"): 0.2, ("audio", "text"): np.nan, ("image", "text"): 0.7})
    m = correlation_matrix(table)
    assert list(m.index) == list(m.columns) == ["audio", "image", "text"]
    assert np.diag(m.to_numpy()).tolist() == [1.0, 1.0, 1.0]
    assert m.loc["image", "audio"] == m.loc["audio", "image"] == 0.2
    assert m.loc["text", "image"] == 0.7 and np.isnan(m.loc["text", "audio"])
    with pytest.raises(ValueError, match="unknown value 'cca_9'; choose one of: cka"):
        correlation_matrix(table, "cca_9")


def test_heatmap_png_is_written(tmp_path: Path) -> None:
    from PIL import Image

    table = table_of({("audio", "image"): 0.2, ("audio", "text"): np.nan, ("image", "text"): 0.7})
    out = plot_correlation_heatmap(correlation_matrix(table), tmp_path / "sub" / "cka.png", "t")
    assert out == tmp_path / "sub" / "cka.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as image:
        assert image.size[0] > 300 and image.size[1] > 300
