"""Robustness curves and summaries on a small trained model, and the preprocessor's hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mmfuse import MultimodalClassifier
from mmfuse.data.preprocess import Encoded, PreprocessConfig, Preprocessor
from mmfuse.data.readers import Table, read_table
from mmfuse.data.schema import infer_schema
from mmfuse.errors import MmfuseError
from mmfuse.evaluation.corruptions import gaussian_noise, list_corruptions
from mmfuse.evaluation.robustness import (
    CURVE_COLUMNS,
    SUMMARY_COLUMNS,
    plot_robustness,
    robustness_curves,
    robustness_summary,
    substitute,
)

N = 100
SEVERITIES = (0.0, 0.5, 1.0)


def _write(root: Path, n: int, seed: int) -> Path:
    """Label = the sign of ``x`` (tabular: informative); images, sounds and notes are noise."""
    import soundfile as sf
    from PIL import Image

    g = np.random.default_rng(seed)
    y = g.integers(0, 2, n)
    for sub in ("img", "snd"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(g.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"img/{i}.png")
        sf.write(root / f"snd/{i}.wav", 0.3 * g.standard_normal(1600).astype(np.float32), 16000)
    words = np.array(["box", "came", "blue", "on", "time", "the", "seller", "order"])
    frame = pd.DataFrame(
        {
            "photo": [f"img/{i}.png" for i in range(n)],
            "note": [" ".join(g.choice(words, 6)) for _ in range(n)],
            "sound": [f"snd/{i}.wav" for i in range(n)],
            "x": np.round(np.where(y == 1, 1.5, -1.5) + 0.5 * g.standard_normal(n), 3),
            "colour": g.choice(["red", "blue", "green"], n),
            "label": np.where(y == 1, "yes", "no"),
        }
    )
    frame.to_csv(root / "data.csv", index=False)
    return root / "data.csv"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("robust")
    return _write(root / "train", N, 0), _write(root / "test", 60, 1)


@pytest.fixture(scope="module")
def fitted(data: tuple[Path, Path]) -> MultimodalClassifier:
    settings: dict[str, Any] = {"epochs": 8, "dim": 16, "image_size": 8, "num_threads": 1}
    clf = MultimodalClassifier(**settings, verbose=False, kinds={"note": "text"})
    return clf.fit(data[0], target="label")


@pytest.fixture(scope="module")
def curves(fitted: MultimodalClassifier, data: tuple[Path, Path]) -> pd.DataFrame:
    return robustness_curves(fitted, data[1], severities=SEVERITIES, num_threads=1)


def test_curves_have_every_modality_corruption_severity_and_metric(
    fitted: MultimodalClassifier, curves: pd.DataFrame, data: tuple[Path, Path]
) -> None:
    assert list(curves.columns) == CURVE_COLUMNS
    kinds = fitted.preprocessor_.modalities
    assert kinds == {"note": "text", "photo": "image", "sound": "audio", "tabular": "tabular"}
    clean = fitted.evaluate(data[1])
    expected = {
        (m, c, s, k) for m, kind in kinds.items() for c in list_corruptions(kind)
        for s in SEVERITIES for k in clean
    }  # fmt: skip
    got = set(curves[["modality", "corruption", "severity", "metric"]].itertuples(index=False))
    assert got == expected and len(curves) == len(expected)
    at_zero = curves[curves["severity"] == 0]
    for metric, value in clean.items():
        np.testing.assert_allclose(at_zero.loc[at_zero["metric"] == metric, "value"], value)


def test_losing_the_informative_modality_costs_accuracy(curves: pd.DataFrame) -> None:
    acc = curves[(curves["metric"] == "accuracy") & (curves["modality"] == "tabular")]
    value = acc.set_index(["corruption", "severity"])["value"]
    assert value["drop", 0.0] >= 0.9
    assert value["drop", 1.0] < value["drop", 0.0] - 0.2
    assert value["missing", 1.0] < value["missing", 0.0] - 0.2


def test_corrupting_a_modality_changes_only_its_inputs(
    fitted: MultimodalClassifier, data: tuple[Path, Path]
) -> None:
    pre = fitted.preprocessor_
    table = read_table(data[1])
    clean = pre.transform(table, verbose=False, num_threads=1)

    def noisy(name: str, value: Any, rng: np.random.Generator) -> Any:
        return gaussian_noise(value, 1.0, rng) if name == "photo" else value

    single = pre.restrict(["photo"])
    redone = single.transform(table, with_target=False, corrupt=noisy, verbose=False)
    mixed = substitute(clean, "photo", redone)
    assert not np.array_equal(mixed.inputs["photo"], clean.inputs["photo"])
    for m in ("note", "sound", "tabular"):
        assert mixed.inputs[m] is clean.inputs[m]
    shuffled = Encoded(redone.inputs, redone.mask, redone.rows[::-1].copy())
    with pytest.raises(MmfuseError, match="records of the two encodings differ"):
        substitute(clean, "photo", shuffled)


def test_summary_of_real_curves(curves: pd.DataFrame) -> None:
    summary = robustness_summary(curves, "classification")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == curves.groupby(["modality", "corruption"]).ngroups
    row = summary.set_index(["modality", "corruption"]).loc[("tabular", "drop")]
    assert row["effective_robustness"] < 0 and row["retention"] < 1
    assert row["relative_robustness"] == pytest.approx(row["auc"])


def _hand_curves(metric: str, values: list[float]) -> pd.DataFrame:
    rows = [("a", "drop", s, metric, v) for s, v in zip((0.0, 0.5, 1.0), values)]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def test_summary_by_hand_for_accuracy_rmse_and_a_reference() -> None:
    acc = robustness_summary(_hand_curves("accuracy", [0.8, 0.6, 0.4]), "classification").iloc[0]
    assert (acc["clean"], acc["worst"]) == (0.8, 0.4)
    assert acc["auc"] == pytest.approx(0.6) and acc["relative_robustness"] == pytest.approx(0.6)
    assert acc["effective_robustness"] == pytest.approx(-0.2)  # mean drop below clean
    assert acc["retention"] == pytest.approx(0.75)
    rmse = robustness_summary(_hand_curves("rmse", [1.0, 2.0, 4.0]), "regression").iloc[0]
    assert rmse["auc"] == pytest.approx(2.25)
    assert rmse["relative_robustness"] == pytest.approx(-2.25)
    assert rmse["effective_robustness"] == pytest.approx(-1.25)  # higher = more robust
    assert rmse["retention"] == pytest.approx((1 + 2 * 0.5 + 0.25) / 4)
    reference = _hand_curves("accuracy", [0.9, 0.8, 0.7])  # MultiBench: relative to a baseline
    versus = robustness_summary(_hand_curves("accuracy", [0.8, 0.6, 0.4]), "classification",
                                reference=reference).iloc[0]  # fmt: skip
    assert versus["effective_robustness"] == pytest.approx(-0.1)
    with pytest.raises(MmfuseError, match="unknown metric"):
        robustness_summary(_hand_curves("accuracy", [1, 1, 1]), "classification", metric="speed")


def test_bad_arguments_raise(fitted: MultimodalClassifier, data: tuple[Path, Path]) -> None:
    with pytest.raises(MmfuseError, match="unknown modalities"):
        robustness_curves(fitted, data[1], modalities=["smell"])
    with pytest.raises(MmfuseError, match=r"severities must be in \[0, 1\]"):
        robustness_curves(fitted, data[1], severities=(0.5, 2.0))
    with pytest.raises(MmfuseError, match="not fitted"):
        robustness_curves(MultimodalClassifier(), data[1])


def test_plot_writes_a_png(curves: pd.DataFrame, tmp_path: Path) -> None:
    path = plot_robustness(curves, tmp_path / "plots" / "robustness.png", "accuracy")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(MmfuseError, match="no metric"):
        plot_robustness(curves, tmp_path / "x.png", "rmse")


# ------------------------------------------------- Preprocessor.transform(corrupt=...)
@pytest.fixture(scope="module")
def small(data: tuple[Path, Path]) -> tuple[Preprocessor, Table]:
    table = read_table(data[1])
    schema = infer_schema(table.df, "label", "note=text", base_dir=table.base_dir)
    config = PreprocessConfig(image_size=8, text_max_length=6, n_mels=8, audio_frames=10)
    return Preprocessor(schema, config, "classification").fit(table), table


def test_identity_hook_gives_identical_arrays(small: tuple[Preprocessor, Table]) -> None:
    pre, table = small
    plain = pre.transform(table, verbose=False)
    same = pre.transform(table, verbose=False, corrupt=lambda name, value, rng: value)
    for m in pre.modalities:
        np.testing.assert_array_equal(same.inputs[m], plain.inputs[m])
        np.testing.assert_array_equal(same.mask[m], plain.mask[m])


def test_image_hook_changes_only_the_image(small: tuple[Preprocessor, Table]) -> None:
    pre, table = small
    seen: set[str] = set()

    def hook(name: str, value: Any, rng: np.random.Generator) -> Any:
        seen.add(name)
        return gaussian_noise(value, 1.0, rng) if name == "photo" else value

    plain = pre.transform(table, verbose=False)
    hit = pre.transform(table, verbose=False, corrupt=hook)
    assert seen == set(pre.modalities)
    assert not np.array_equal(hit.inputs["photo"], plain.inputs["photo"])
    for m in ("note", "sound", "tabular"):
        np.testing.assert_array_equal(hit.inputs[m], plain.inputs[m])


def test_hook_randomness_does_not_depend_on_threads(small: tuple[Preprocessor, Table]) -> None:
    pre, table = small

    def hook(name: str, value: Any, rng: np.random.Generator) -> Any:
        return value + 0.1 * rng.standard_normal(value.shape) if name == "sound" else value

    one = pre.transform(table, verbose=False, corrupt=hook, num_threads=1)
    four = pre.transform(table, verbose=False, corrupt=hook, num_threads=4)
    np.testing.assert_array_equal(one.inputs["sound"], four.inputs["sound"])
