"""A classifier's probabilities are temperature-scaled on its validation records: the temperature
is recorded, applied by predict and by a reloaded model, and off with calibrate=False."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmfuse import MultimodalClassifier, load


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    noisy = x[:, 0] + rng.normal(0, 1.0, n) > 0  # a noisy label: an over-fitted model is over-confident
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": np.where(noisy, "yes", "no")})


FAST = dict(epochs=40, patience=40, dim=16, num_threads=1, verbose=False, pretrained=False, lr=1e-2)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[MultimodalClassifier, Path]:
    out = tmp_path_factory.mktemp("calibrated") / "model"
    clf = MultimodalClassifier(**FAST).fit(_table(300, 0), target="label", out_dir=out)
    return clf, out


def test_the_temperature_is_fitted_recorded_and_applied(fitted: tuple[MultimodalClassifier, Path]) -> None:
    clf, out = fitted
    t = clf.model_config_.temperature
    assert clf.calibration_["temperature"] == pytest.approx(t)
    assert clf.calibration_["valid_log_loss_after"] <= clf.calibration_["valid_log_loss_before"]
    assert t > 1.0  # an over-fitted model on noisy labels is over-confident: logits / T with T > 1 soften it
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["temperature"] == pytest.approx(t)
    assert json.loads((out / "metrics.json").read_text())["calibration"]["temperature"] == pytest.approx(t)
    # predict_proba is softmax(logits / T)
    enc = clf.prepare(_table(20, 1))
    data = {m: torch.from_numpy(v) for m, v in enc.inputs.items()}, {m: torch.from_numpy(v) for m, v in enc.mask.items()}
    with torch.no_grad():
        clf.model_.temperature.fill_(1.0)
        raw = clf.model_(*data).require_logits()
        clf.model_.temperature.fill_(t)
    np.testing.assert_allclose(clf.predict_proba(_table(20, 1)), (raw / t).softmax(-1).numpy(), atol=1e-6)


def test_a_reloaded_model_applies_the_same_temperature(fitted: tuple[MultimodalClassifier, Path]) -> None:
    clf, out = fitted
    again = load(out, verbose=False)
    assert float(again.model_.temperature) == pytest.approx(clf.model_config_.temperature)
    np.testing.assert_allclose(again.predict_proba(_table(20, 2)), clf.predict_proba(_table(20, 2)), atol=1e-6)


def test_calibrate_false_leaves_the_probabilities_alone() -> None:
    clf = MultimodalClassifier(**FAST, calibrate=False).fit(_table(120, 3), target="label")
    assert clf.model_config_.temperature == 1.0 and clf.calibration_ is None
    assert "ece" in clf.metrics_


def test_the_embedding_only_copy_applies_the_same_temperature(fitted: tuple[MultimodalClassifier, Path]) -> None:
    """Explanations and the export's parts run ``on_embeddings``: the same calibrated logits."""
    from mmfuse.evaluation._forward import embeddings_of

    clf, _ = fitted
    assert float(clf.model_.temperature) > 1.0
    enc = clf.prepare(_table(20, 4))
    data = embeddings_of(clf.model_, enc)
    with torch.no_grad():
        full = clf.model_({m: torch.from_numpy(v) for m, v in enc.inputs.items()},
                          {m: torch.from_numpy(v) for m, v in enc.mask.items()}).require_logits()
        copy = clf.model_.on_embeddings()(data.inputs, data.mask).require_logits()
    torch.testing.assert_close(copy, full)
