"""Modality contributions: Shapley values, ablation, fusion weights and occlusion maps."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfuse.data.preprocess import Encoded
from mmfuse.data.tensors import TensorData
from mmfuse.evaluation.contribution import (
    ablation_deltas,
    fusion_weights,
    modality_shapley,
    model_value_fn,
    occlusion_attribution,
    plot_contributions,
    shapley_values,
)
from mmfuse.evaluation.contribution_plots import plot_raw_sample
from mmfuse.models import ModelConfig, MultimodalModel, build_model
from mmfuse.models.multimodal import all_present
from mmfuse.tasks import create_task
from mmfuse.training import TrainConfig, Trainer
from mmfuse.types import InputSpec

VECTORS = {m: InputSpec("embedding", (6,)) for m in ("a", "b", "c", "d")}
ALL_KINDS = {
    "image": InputSpec("image", (3, 16, 16)),
    "text": InputSpec("text", (10,), vocab_size=30),
    "audio": InputSpec("audio", (16, 20)),
    "video": InputSpec("video", (3, 3, 16, 16)),
    "tabular": InputSpec("tabular", (4,), num_numeric=2, cardinalities=(5, 3)),
    "vector": InputSpec("embedding", (20,)),
}


def _model(
    specs: Mapping[str, InputSpec], fusion: str = "attention", task: str = "classification",
    level: str = "feature", seed: int = 0,
) -> MultimodalModel:  # fmt: skip
    torch.manual_seed(seed)
    encoders = {m: ("raw" if level == "early" else "mlp" if s.kind in ("embedding", "tabular")
                    else {"text": "gru"}.get(s.kind, "cnn")) for m, s in specs.items()}  # fmt: skip
    outputs = 3 if task == "classification" else 1
    config = ModelConfig(level, fusion, encoders, task, outputs, dim=16)
    return build_model(config, dict(specs)).eval()


def _records(specs: Mapping[str, InputSpec], n: int, seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    inputs = {}
    for m, s in specs.items():
        if s.kind == "text":
            ids = rng.integers(2, s.vocab_size, (n,) + s.shape)
            ids[:, 7:] = 0  # padding at the end
            inputs[m] = ids.astype(np.int64)
        elif s.kind == "tabular":
            numbers = rng.normal(size=(n, s.num_numeric))
            codes = [rng.integers(0, c, (n, 1)) for c in s.cardinalities]
            inputs[m] = np.concatenate([numbers, *codes], 1).astype(np.float32)
        else:
            inputs[m] = rng.normal(size=(n,) + s.shape).astype(np.float32)
    mask = {m: np.ones(n, dtype=bool) for m in specs}
    return Encoded(inputs, mask, np.arange(100, 100 + n), rng.integers(0, 3, n).astype(np.float32))



# ------------------------------------------------------------------ Shapley values
def test_exact_shapley_of_an_additive_game_is_the_weights() -> None:
    weights = {"a": np.array([1.0, -2.0]), "b": np.array([0.5, 0.0]), "c": np.array([3.0, 1.0])}

    def value(present: Mapping[str, np.ndarray]) -> np.ndarray:
        return 10.0 + sum(w * present[m] for m, w in weights.items())

    phi = shapley_values(value, ["a", "b", "c"])
    np.testing.assert_allclose(phi, np.stack(list(weights.values()), 1), atol=1e-12)


def test_pure_interaction_is_shared_equally() -> None:
    def value(present: Mapping[str, np.ndarray]) -> np.ndarray:
        return (present["a"] & present["b"]).astype(float)  # c plays no part

    phi = shapley_values(value, ["a", "b", "c"], num_samples=4)
    assert phi.shape == (4, 3)
    np.testing.assert_allclose(phi, np.tile([0.5, 0.5, 0.0], (4, 1)), atol=1e-12)


def _seven_player_game(present: Mapping[str, np.ndarray]) -> np.ndarray:
    """Additive part plus a pairwise and a three-way interaction, per sample."""
    mods = sorted(present)
    x = np.stack([present[m].astype(float) for m in mods], 1) * np.ones((3, 1))  # (3, 7)
    w = np.array([[0.3, -0.2, 0.5, 0.1, 0.0, 0.4, -0.1], [1.0, 0.0, 0.0, 0.2, 0.2, 0.2, 0.2],
                  [0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9]])  # fmt: skip
    return (x * w).sum(1) + 0.8 * x[:, 0] * x[:, 1] - 0.6 * x[:, 2] * x[:, 3] * x[:, 4]


def test_monte_carlo_is_close_to_exact_and_efficient() -> None:
    mods = [f"m{i}" for i in range(7)]
    exact = shapley_values(_seven_player_game, mods, exact_max=7)
    sampled = shapley_values(_seven_player_game, mods, exact_max=6, num_permutations=200)
    np.testing.assert_allclose(exact[:, 0], [0.7, 1.4, 0.4], atol=1e-12)  # 0.8 split over 0, 1
    np.testing.assert_allclose(exact[:, 2], [0.3, -0.2, -0.1], atol=1e-12)  # -0.6 split by 3
    np.testing.assert_allclose(sampled, exact, atol=0.06)
    total = _seven_player_game({m: np.ones(3, bool) for m in mods}) - _seven_player_game(
        {m: np.zeros(3, bool) for m in mods}
    )
    np.testing.assert_allclose(sampled.sum(1), total, atol=1e-9)
    again = shapley_values(_seven_player_game, mods, exact_max=6, num_permutations=200)
    np.testing.assert_array_equal(sampled, again)  # seeded


def test_each_coalition_is_evaluated_once() -> None:
    seen: list[tuple[bool, ...]] = []

    def value(present: Mapping[str, np.ndarray]) -> np.ndarray:
        seen.append(tuple(bool(present[m][0]) for m in "abcd"))
        return np.zeros(2)

    shapley_values(value, list("abcd"), num_samples=2)
    assert len(seen) == len(set(seen)) == 16


# --------------------------------------------------------------- a model's values
@pytest.mark.parametrize(
    ("fusion", "level", "task"),
    [("attention", "feature", "classification"), ("moe", "feature", "regression"),
     ("weighted", "late", "classification"), ("early_concat", "early", "classification")],
)  # fmt: skip
def test_model_shapley_is_efficient(fusion: str, level: str, task: str) -> None:
    model = _model(VECTORS, fusion, task, level)
    enc = _records(VECTORS, 20)
    result = modality_shapley(model, enc, task)
    assert result.values.shape == (20, 4) and result.modalities == ["a", "b", "c", "d"]
    np.testing.assert_allclose(result.values.sum(1), result.full - result.base, atol=1e-5)
    np.testing.assert_allclose(result.mean_abs, np.abs(result.values).mean(0))
    low, high = result.mean_abs_ci.T
    assert np.all(low <= result.mean_abs + 1e-12) and np.all(result.mean_abs <= high + 1e-12)


def test_value_fn_matches_the_full_forward_pass() -> None:
    """Encoding once and changing only the mask gives what the model itself gives."""
    model = _model(ALL_KINDS, "gated")
    enc = _records(ALL_KINDS, 6)
    value = model_value_fn(model, enc, "classification")
    data = TensorData.from_encoded(enc)
    with torch.no_grad():
        full = model(data.inputs, data.mask).logits.softmax(-1)
        predicted = full.argmax(1)
        keep = {m: torch.full((6,), m in ("image", "text", "tabular")) for m in ALL_KINDS}
        part = model(data.inputs, keep).logits.softmax(-1).gather(1, predicted[:, None])[:, 0]
    present = {m: keep[m].numpy() for m in ALL_KINDS}
    np.testing.assert_allclose(value(present), part.numpy(), atol=1e-6)
    np.testing.assert_allclose(value({m: np.ones(6, bool) for m in ALL_KINDS}),
                               full.max(1).values.numpy(), atol=1e-6)  # fmt: skip


def test_a_modality_missing_in_the_data_gets_exactly_zero() -> None:
    model = _model(VECTORS, "attention")
    enc = _records(VECTORS, 12)
    enc.mask["b"][::3] = False
    enc.mask["d"][:] = False
    result = modality_shapley(model, enc, "classification")
    assert np.all(result.values[::3, 1] == 0.0)
    assert np.all(result.values[:, 3] == 0.0)
    assert np.all(result.values[1::3, 1] != 0.0)
    np.testing.assert_allclose(result.values.sum(1), result.full - result.base, atol=1e-5)


def test_unknown_task_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        model_value_fn(_model(VECTORS), _records(VECTORS, 2), "ranking")


# ---------------------------------------------------- a trained model with a noise input
def _signal_and_noise(n: int, seed: int) -> Encoded:
    """``signal`` carries the label, ``noise`` is pure noise.

    The class shows as a +-1 shift of half the features and the opposite shift of the other
    half (a shift of every feature would vanish in the encoder's LayerNorm).
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    direction = np.repeat([1.0, -1.0], 4)
    signal = rng.normal(size=(n, 8)) + (2.0 * y[:, None] - 1.0) * direction
    noise = rng.normal(size=(n, 8))
    inputs = {"signal": signal.astype(np.float32), "noise": noise.astype(np.float32)}
    mask = {m: np.ones(n, dtype=bool) for m in inputs}
    return Encoded(inputs, mask, np.arange(n), y.astype(np.float32))


@pytest.fixture(scope="module")
def trained() -> tuple[MultimodalModel, Encoded]:
    """Trained with modality dropout, so coalitions without ``signal`` are in-distribution."""
    specs = {m: InputSpec("embedding", (8,)) for m in ("noise", "signal")}
    torch.manual_seed(0)
    encoders = {m: "mlp" for m in specs}
    config = ModelConfig("feature", "attention", encoders, "classification", 2, dim=16)
    model = build_model(config, specs)
    settings = TrainConfig(epochs=6, batch_size=32, lr=5e-3, device="cpu", augment="none",
                           modality_dropout=0.5)  # fmt: skip
    trainer = Trainer(model, create_task("classification", 2), specs, settings, verbose=False)
    train, valid = _signal_and_noise(400, 1), _signal_and_noise(200, 2)
    trainer.fit(TensorData.from_encoded(train), TensorData.from_encoded(valid))
    return model.cpu().eval(), _signal_and_noise(300, 3)


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean())


def test_noise_modality_contributes_almost_nothing(
    trained: tuple[MultimodalModel, Encoded],
) -> None:
    model, test = trained
    result = modality_shapley(model, test, "classification")
    noise, signal = result.mean_abs[result.modalities.index("noise")], result.mean_abs[1]
    assert result.modalities == ["noise", "signal"]
    assert signal > 0.15 and noise < 0.2 * signal, (noise, signal)
    ablation = ablation_deltas(model, test, "classification", _accuracy)
    assert ablation.full > 0.8
    assert ablation.deltas["signal"] > 0.2
    assert abs(ablation.deltas["noise"]) < 0.05
    assert ablation.without["signal"] == pytest.approx(ablation.full - ablation.deltas["signal"])


def test_ablation_direction_follows_the_metric(trained: tuple[MultimodalModel, Encoded]) -> None:
    model, test = trained

    def error_rate(y: np.ndarray, p: np.ndarray) -> float:
        return 1.0 - _accuracy(y, p)

    up = ablation_deltas(model, test, "classification", _accuracy)
    down = ablation_deltas(model, test, "classification", error_rate, higher_is_better=False)
    for m in ("noise", "signal"):
        assert down.deltas[m] == pytest.approx(up.deltas[m])


# ------------------------------------------------------------------ fusion weights
@pytest.mark.parametrize("fusion", ["attention", "cross_attention", "moe", "gated", "graph",
                                    "weighted_sum"])  # fmt: skip
def test_fusion_weights_sum_to_one(fusion: str) -> None:
    model = _model(VECTORS, fusion)
    enc = _records(VECTORS, 16)
    enc.mask["c"][:8] = False
    weights = fusion_weights(model, enc)
    assert weights is not None and sorted(weights) == ["a", "b", "c", "d"]
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(w >= 0 for w in weights.values())


def test_attention_weights_are_the_mean_attention_received() -> None:
    model = _model(VECTORS, "attention")
    enc = _records(VECTORS, 5)
    weights = fusion_weights(model, enc)
    data = TensorData.from_encoded(enc)
    with torch.no_grad():
        model(data.inputs, data.mask)
    received = model.fusion.last_attention.mean(dim=(1, 2)).mean(0)  # (M,)
    assert weights is not None
    np.testing.assert_allclose(list(weights.values()), received.numpy(), atol=1e-6)


def test_fusion_weights_of_late_weighted_and_of_concat() -> None:
    late = _model(VECTORS, "weighted", level="late")
    late.fusion.weights.copy_(torch.tensor([2.0, 1.0, 1.0, 0.0]))
    assert fusion_weights(late, _records(VECTORS, 4)) == pytest.approx(
        {"a": 0.5, "b": 0.25, "c": 0.25, "d": 0.0}
    )
    assert fusion_weights(_model(VECTORS, "concat"), _records(VECTORS, 4)) is None


# --------------------------------------------------------------------- occlusion
def test_occlusion_maps_have_one_value_per_part() -> None:
    model = _model(ALL_KINDS, "attention")
    enc = _records(ALL_KINDS, 1)
    inputs = {m: x[0] for m, x in enc.inputs.items()}
    mask = {m: True for m in ALL_KINDS}
    maps = occlusion_attribution(model, inputs, mask, ALL_KINDS, "classification", None)
    shapes = {m: a.shape for m, a in maps.items()}
    assert shapes == {"image": (16, 16), "text": (10,), "audio": (16, 20), "video": (3,),
                      "tabular": (4,), "vector": (16,)}  # fmt: skip
    assert np.all(maps["text"][7:] == 0.0)  # padding is never occluded
    assert all(np.isfinite(a).all() and np.abs(a).max() > 0 for a in maps.values())
    mask["audio"] = False
    regression = occlusion_attribution(_model(ALL_KINDS, "moe", "regression"), inputs, mask,
                                       ALL_KINDS, "regression")  # fmt: skip
    assert "audio" not in regression and regression["image"].shape == (16, 16)


def test_occlusion_drop_is_the_score_change_of_hiding_that_part() -> None:
    specs = {"tabular": ALL_KINDS["tabular"], "vector": InputSpec("embedding", (4,))}
    model = _model(specs, "concat")
    enc = _records(specs, 1)
    inputs = {m: x[0] for m, x in enc.inputs.items()}
    maps = occlusion_attribution(model, inputs, {m: True for m in specs}, specs,
                                 "classification", target_class=2)  # fmt: skip

    def p2(tab: np.ndarray) -> float:
        x = {m: torch.as_tensor(v)[None] for m, v in {**inputs, "tabular": tab}.items()}
        with torch.no_grad():
            return float(model(x, all_present(x)).logits.softmax(-1)[0, 2])

    hidden = inputs["tabular"].copy()
    hidden[3] = 1.0  # a categorical code becomes "unknown"
    assert maps["tabular"][3] == pytest.approx(p2(inputs["tabular"]) - p2(hidden), abs=1e-6)
    hidden = inputs["tabular"].copy()
    hidden[0] = 0.0  # a number becomes the training mean
    assert maps["tabular"][0] == pytest.approx(p2(inputs["tabular"]) - p2(hidden), abs=1e-6)
    assert maps["vector"].shape == (4,)


def test_occlusion_of_an_ignored_image_region_is_zero() -> None:
    """A patch that is already at the occlusion value (0) changes nothing."""
    specs = {"image": InputSpec("image", (3, 16, 16)), "vector": InputSpec("embedding", (4,))}
    model = _model(specs, "concat")
    enc = _records(specs, 1)
    image = enc.inputs["image"][0]
    image[:, :8, :] = 0.0  # top half already "hidden"
    inputs = {"image": image, "vector": enc.inputs["vector"][0]}
    maps = occlusion_attribution(model, inputs, {"image": True, "vector": True}, specs,
                                 "classification")  # fmt: skip
    # rows whose every covering patch lies in the top half (batched matmuls differ by ~1e-8)
    assert np.allclose(maps["image"][:6], 0.0, atol=1e-6)
    assert np.abs(maps["image"][10:]).max() > 0


# ------------------------------------------------------------------------- plots
def test_plot_contributions_writes_a_png(
    tmp_path: Path, trained: tuple[MultimodalModel, Encoded]
) -> None:
    model, test = trained
    result = modality_shapley(model, test, "classification")
    path = plot_contributions(result, tmp_path / "c.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.units == "contribution to P(predicted class)"


@pytest.mark.parametrize("kind", ["image", "video", "audio", "text"])
def test_plot_raw_sample_draws_the_decoded_cell(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    decoded, attribution = {
        "image": (rng.uniform(0, 1, (3, 32, 32)), rng.normal(size=(32, 32))),
        "video": (rng.uniform(0, 1, (3, 3, 16, 16)), rng.normal(size=3)),
        "audio": (rng.normal(size=1600), rng.normal(size=16)),
        "text": ("one two three", np.array([0.1, -0.2, 0.0])),
    }[kind]
    parts = [f"{i / 16:.2f} s" for i in range(16)] if kind == "audio" else None
    path = plot_raw_sample(kind, decoded, attribution, tmp_path / f"{kind}.png", "P(a)",
                           "title\nsecond line\nthird line", parts, 800)  # fmt: skip
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_raw_sample_of_an_unknown_kind_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'tabular' of a decoded cell; choose one of: image, vid"):
        plot_raw_sample("tabular", np.zeros(3), np.zeros(3), tmp_path / "x.png")
