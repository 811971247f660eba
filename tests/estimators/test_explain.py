"""``explain`` on estimators fitted to the 60-record demo dataset (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import mmfuse
from mmfuse import MultimodalClassifier, MultimodalRegressor
from mmfuse.data.cache import FeatureCache
from mmfuse.errors import MmfuseError
from mmfuse.estimators.explain import explain

FAST = {
    "epochs": 2,
    "dim": 16,
    "verbose": False,
    "num_threads": 1,
    "features": ["image", "review", "audio", "income", "region"],
}
MODALITIES = ["audio", "image", "review", "tabular"]


@pytest.fixture(scope="module")
def fitted(demo_csv: Path) -> MultimodalClassifier:
    return MultimodalClassifier(fusion="moe", **FAST).fit(demo_csv, target="label")


def _valid_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return img.size


def test_explain_returns_per_record_values_and_a_summary(
    fitted: MultimodalClassifier, demo_csv: Path
) -> None:
    frame = fitted.explain(demo_csv)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == MODALITIES and frame.index.name == "row"
    np.testing.assert_array_equal(frame.index, np.arange(60))
    summary = frame.attrs["summary"]
    assert summary["task"] == "classification" and summary["records"] == 60
    assert summary["units"] == "contribution to P(predicted class)"
    np.testing.assert_allclose(
        [summary["mean_abs"][m] for m in MODALITIES], frame.abs().mean(), atol=1e-6
    )
    for m in MODALITIES:
        low, high = summary["mean_abs_ci95"][m]
        assert low <= summary["mean_abs"][m] <= high
    ablation = summary["ablation"]
    assert ablation["metric"] == "accuracy" and 0.0 <= ablation["full"] <= 1.0
    for m in MODALITIES:
        assert ablation["deltas"][m] == pytest.approx(ablation["full"] - ablation["without"][m])
    weights = summary["fusion_weights"]  # moe keeps its gate
    assert sorted(weights) == MODALITIES and sum(weights.values()) == pytest.approx(1.0)
    # a modality missing from a record contributes exactly nothing to it
    missing_audio = mmfuse.read_table(demo_csv).df["audio"].isna().to_numpy()
    assert missing_audio.any()
    assert np.all(frame["audio"].to_numpy()[missing_audio] == 0.0)


def test_explain_writes_json_and_plots(
    fitted: MultimodalClassifier, demo_csv: Path, tmp_path: Path
) -> None:
    df = mmfuse.read_table(demo_csv).df
    row = int(df.index[df[["image", "review", "audio", "income"]].notna().all(axis=1)][0])
    result = explain(fitted.fitted_model, fitted.pipeline_, demo_csv, tmp_path, sample=row)
    data = json.loads((tmp_path / "contributions.json").read_text())
    assert data["modalities"] == MODALITIES and len(data["records"]) == 60
    assert data["records"][0]["row"] == 0 and set(data["records"][0]["values"]) == set(MODALITIES)
    first = data["records"][0]
    assert sum(first["values"].values()) == pytest.approx(first["full"] - first["base"], abs=1e-5)
    width, height = _valid_png(tmp_path / "contributions.png")
    assert width > 400 and height > 150
    record = json.loads((tmp_path / "samples" / f"row_{row}.json").read_text())
    assert record["row"] == row and record["explained"].startswith("P(")
    assert record["plots"] == {m: f"row_{row}_{m}.png" for m in MODALITIES}
    for m in MODALITIES:
        _valid_png(tmp_path / "samples" / f"row_{row}_{m}.png")
    assert len(record["occlusion"]["image"]) == 32  # (H, W) map of a 32x32 image
    assert record["raw"] == {}  # from-scratch encoders: occluded in the model's input
    assert len(record["occlusion"]["tabular"]) == 2  # income, region
    assert result["sample"]["shapley"] == pytest.approx(record["shapley"])


def test_explain_without_target_skips_ablation(
    fitted: MultimodalClassifier, demo_csv: Path
) -> None:
    table = mmfuse.read_table(demo_csv)
    unlabelled = mmfuse.read_table(table.df.drop(columns="label"), base_dir=demo_csv.parent)
    frame = fitted.explain(unlabelled)
    assert frame.attrs["summary"]["ablation"] is None and len(frame) == 60


def test_explain_subsets_records_but_keeps_the_sample(
    fitted: MultimodalClassifier, demo_csv: Path
) -> None:
    result = explain(fitted.fitted_model, fitted.pipeline_, demo_csv, max_records=10, sample=57)
    assert len(result["values"]) == 10 and 57 in result["values"].index
    assert result["sample"]["row"] == 57
    assert list(result["values"].index) == sorted(result["values"].index)
    with pytest.raises(MmfuseError, match="max_records must be >= 1"):
        explain(fitted.fitted_model, fitted.pipeline_, demo_csv, max_records=0)


def test_unknown_sample_row_is_an_error(fitted: MultimodalClassifier, demo_csv: Path) -> None:
    with pytest.raises(MmfuseError, match="row 999 is not among the 60 readable records"):
        fitted.explain(demo_csv, sample=999)


def test_unfitted_estimator_is_an_error(demo_csv: Path) -> None:
    with pytest.raises(MmfuseError, match="not fitted"):
        MultimodalClassifier().explain(demo_csv)


def test_regressor_and_late_fusion(demo_csv: Path, tmp_path: Path) -> None:
    settings = {**FAST, "features": ["review", "income", "region"]}
    reg = MultimodalRegressor(fusion="weighted", **settings).fit(demo_csv, target="score")
    frame = reg.explain(demo_csv, tmp_path, sample=0)
    summary = frame.attrs["summary"]
    assert summary["units"] == "contribution to prediction (standardised)"
    assert summary["ablation"]["metric"] == "rmse"
    assert sum(summary["fusion_weights"].values()) == pytest.approx(1.0)
    assert list(frame.columns) == ["review", "tabular"]
    _valid_png(tmp_path / "samples" / "row_0_review.png")
    record = json.loads((tmp_path / "samples" / "row_0.json").read_text())
    assert record["explained"] == "prediction of score (standardised)"


# ------------------------------------------------------ pretrained (frozen) encoders
@pytest.fixture(scope="module")
def pretrained_explained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[MultimodalClassifier, pd.DataFrame, dict, Path, int]:
    """A 1-epoch model on frozen efficientnet-lite0 / minilm / voice features of 12 demo
    records, and ``explain`` of one record with every modality present."""
    from mmfuse.datasets import make_demo_dataset
    from mmfuse.pretrained import BACKBONES

    missing = [n for n in ("efficientnet-lite0", "minilm", "voice") if BACKBONES[n].missing()]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    root = tmp_path_factory.mktemp("explain-pretrained")
    csv = make_demo_dataset(root / "data", n=12, seed=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMFUSE_PRETRAINED", "1")
        settings = {**FAST, "epochs": 1, "dim": 8, "features": ["image", "review", "audio"]}
        est = MultimodalClassifier(cache_dir=str(root / "cache"), **settings)
        est.fit(csv, target="label")
        df = mmfuse.read_table(csv).df
        row = int(df.index[df[["image", "review", "audio"]].notna().all(axis=1)][0])
        entries = FeatureCache(root / "cache").info()["entries"]
        assert entries > 0
        result = explain(est.fitted_model, est.pipeline_, csv, root / "out", sample=row, max_records=4)
        assert FeatureCache(root / "cache").info()["entries"] == entries  # nothing occluded cached
    return est, df, result, root / "out", row


def test_pretrained_image_map_shows_image_regions(pretrained_explained: tuple) -> None:
    est, df, result, out, row = pretrained_explained
    assert est.preprocessor_.pretrained["image"].frozen
    image = result["sample"]["occlusion"]["image"]
    assert image.shape == (224, 224) and np.isfinite(image).all()
    assert np.abs(image).max() > 1e-4 and np.ptp(image) > 0  # not "dims 0-89" near 1e-5
    assert result["sample"]["inputs"]["image"].shape == (3, 224, 224)  # the decoded picture
    record = json.loads((out / "samples" / f"row_{row}.json").read_text())
    raw = record["raw"]["image"]
    assert raw["row_edges"] == raw["col_edges"] == list(range(0, 225, 28))
    cells = np.asarray(record["occlusion"]["image"])  # one value per 28 x 28 cell
    np.testing.assert_allclose(cells, np.round(image[::28, ::28], 6))
    assert raw["hidden"].endswith("the ImageNet mean colour, re-encoded by efficientnet-lite0")
    width, height = _valid_png(out / "samples" / f"row_{row}_image.png")
    assert width > 700 and height > 400


def test_pretrained_text_map_has_one_value_per_word(pretrained_explained: tuple) -> None:
    est, df, result, out, row = pretrained_explained
    words = str(df.loc[row, "review"]).split()
    review = result["sample"]["occlusion"]["review"]
    assert review.shape == (len(words),) and np.abs(review).max() > 1e-4
    record = json.loads((out / "samples" / f"row_{row}.json").read_text())
    assert record["raw"]["review"]["parts"] == words
    assert record["raw"]["review"]["hidden"] == "each word removed, re-encoded by minilm"
    _valid_png(out / "samples" / f"row_{row}_review.png")


def test_pretrained_audio_map_has_one_value_per_time_segment(pretrained_explained: tuple) -> None:
    est, df, result, out, row = pretrained_explained
    audio = result["sample"]["occlusion"]["audio"]
    assert audio.shape == (16,) and np.abs(audio).max() > 1e-4
    record = json.loads((out / "samples" / f"row_{row}.json").read_text())
    assert record["raw"]["audio"]["parts"][0] == "0.00-0.06 s"  # 1 s demo clips at 16 kHz
    assert record["raw"]["audio"]["sample_rate"] == 16000
    assert record["plots"] == {m: f"row_{row}_{m}.png" for m in ("audio", "image", "review")}
    _valid_png(out / "samples" / f"row_{row}_audio.png")
