"""A kept ensemble is one model: its probabilities are the weighted mixture of its members', and it
saves, reloads and predicts like any other model directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfuse import MultimodalClassifier, load
from mmfuse.models.builder import ENSEMBLE, ModelConfig
from mmfuse.models.ensemble import EnsembleModel

from test_preset_fit import FAST, _table


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> tuple[MultimodalClassifier, MultimodalClassifier, Path]:
    table = _table(200, 7)
    first = MultimodalClassifier(**FAST, calibrate=False).fit(table, target="label")
    pre = first.preprocessor_
    train, valid = first.prepared(first.read(table), "label", None)[1:]
    second = MultimodalClassifier(**{**FAST, "level": "late", "calibrate": False}).fit_encoded(pre, train, valid)
    weights = [0.75, 0.25]
    kept = MultimodalClassifier(**FAST).fit_encoded(pre, train, valid)  # an estimator to hold the ensemble
    kept.model_ = EnsembleModel([first.model_, second.model_], weights, "classification")
    kept.model_config_ = ModelConfig(ENSEMBLE, "weighted_mean", dict(first.model_config_.encoders), "classification",
                                     2, members=[first.model_config_.to_dict(), second.model_config_.to_dict()],
                                     member_weights=weights)
    out = tmp_path_factory.mktemp("ensemble") / "model"
    kept.save(out)
    return first, second, out


def test_the_ensemble_mixes_its_members_probabilities(ensemble: tuple[MultimodalClassifier, MultimodalClassifier, Path]) -> None:
    first, second, out = ensemble
    again = load(out, verbose=False)
    test = _table(25, 8)
    expected = 0.75 * first.predict_proba(test) + 0.25 * second.predict_proba(test)
    np.testing.assert_allclose(again.predict_proba(test), expected, atol=1e-5)
    assert json.loads((out / "config.json").read_text())["model"]["member_weights"] == [0.75, 0.25]


def test_an_ensemble_is_explained_over_masks_and_by_occlusion(
        ensemble: tuple[MultimodalClassifier, MultimodalClassifier, Path], tmp_path: Path) -> None:
    from mmfuse.evaluation.occlusion import occlusion_attribution

    again = load(ensemble[2], verbose=False)
    values = again.explain(_table(20, 9), tmp_path, sample=0)
    assert values.shape == (20, 2) and values.attrs["summary"]["baseline"] == "mask"
    record = json.loads((tmp_path / "samples" / "row_0.json").read_text())
    assert set(record["shapley"]) == {"note", "tabular"}
    assert (tmp_path / "samples" / "row_0_note.png").stat().st_size > 0
    # the mixture's probability is the weighted sum of the members': so is every occlusion map
    enc = again.prepare(_table(20, 9))
    one = {m: enc.inputs[m][0] for m in enc.inputs}, {m: bool(enc.mask[m][0]) for m in enc.mask}
    specs = again.preprocessor_.input_specs()
    maps = [occlusion_attribution(model, *one, specs, "classification", target_class=1)
            for model in (again.model_, *again.model_.members)]
    assert set(maps[0]) == {"note", "tabular"} and all(np.abs(v).max() > 1e-3 for v in maps[0].values())
    for m in maps[0]:
        np.testing.assert_allclose(maps[0][m], 0.75 * maps[1][m] + 0.25 * maps[2][m], atol=1e-5)


def test_an_ensemble_exports_to_one_onnx_graph(ensemble: tuple[MultimodalClassifier, MultimodalClassifier, Path],
                                               tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from mmfuse.export import export_onnx
    from mmfuse.export.runtime import OnnxModel

    again = load(ensemble[2], verbose=False)
    report = export_onnx(again, tmp_path / "m.onnx")
    assert report.parity.passed and report.parts[-1].startswith("an ensemble of 2 models")
    test = _table(25, 10)
    graph = OnnxModel(tmp_path / "m.onnx")
    records = graph.prepare(test)
    np.testing.assert_allclose(graph.predict(records.inputs, records.mask), again.predict_proba(test), atol=1e-4)


def test_ensemble_weights_are_checked() -> None:
    member = torch.nn.Linear(1, 1)
    member.modalities = ["a"]  # type: ignore[assignment]
    with pytest.raises(ValueError, match="one weight per member"):
        EnsembleModel([member], [0.5, 0.5], "classification")
    with pytest.raises(ValueError, match="non-negative and not all 0"):
        EnsembleModel([member], [0.0], "classification")


def test_members_that_share_networks_are_copied_so_the_ensemble_saves() -> None:
    from mmfuse.search.ensemble_model import _unshared

    shared = torch.nn.Linear(2, 2)
    late_mean, late_stacking = torch.nn.Sequential(shared), torch.nn.Sequential(shared, torch.nn.Linear(2, 2))
    other = torch.nn.Sequential(torch.nn.Linear(2, 2))
    kept = _unshared([late_mean, late_stacking, other])
    assert kept[0] is late_mean and kept[2] is other  # nothing shared: not copied
    assert kept[1] is not late_stacking
    torch.testing.assert_close(kept[1].state_dict(), late_stacking.state_dict())  # the same values
    pointers = [t.data_ptr() for m in kept for t in m.state_dict().values()]
    assert len(pointers) == len(set(pointers))


def test_an_ensembles_modality_embeddings_are_its_members_side_by_side(
        ensemble: tuple[MultimodalClassifier, MultimodalClassifier, Path]) -> None:
    from mmfuse.evaluation.correlation import modality_embeddings, pairwise_correlation

    first, second, out = ensemble
    again = load(out, verbose=False)
    enc = again.prepare(_table(40, 11))
    joined = modality_embeddings(again.model_, enc)
    for m, z in joined.items():
        parts = [modality_embeddings(member.model_, enc)[m] for member in (first, second)]
        np.testing.assert_allclose(z, np.concatenate(parts, axis=1), atol=1e-6)
    pairs = pairwise_correlation(joined, enc.mask)
    assert len(pairs) == 1 and 0.0 <= float(pairs["cka"].iloc[0]) <= 1.0


def test_an_ensemble_reports_what_its_members_guards_set_aside(
        ensemble: tuple[MultimodalClassifier, MultimodalClassifier, Path]) -> None:
    from mmfuse.serve.runner import _contributions

    again = load(ensemble[2], verbose=False)
    first, second = again.model_.members
    assert first.guard is not None and second.guard is not None and again.model_config_.guarded
    table = _table(12, 10)
    enc = again.prepare(table, with_target=False)
    present = enc.mask["tabular"].tolist()
    first.guard.threshold_tabular.fill_(1e-12)  # the member holding 0.75 of the weight distrusts every number
    _, distrusted = again.fitted_model.run(enc)
    assert distrusted["tabular"].tolist() == present and not distrusted["note"].any()
    assert again.predict_frame(table)[0]["distrusted"].tolist() == ["tabular" if p else "" for p in present]
    assert _contributions(again.fitted_model, enc)[4]["tabular"].tolist() == present
    first.guard.threshold_tabular.fill_(float("inf"))
    second.guard.threshold_tabular.fill_(1e-12)  # 0.25 of the weight: outvoted
    assert not again.fitted_model.run(enc)[1]["tabular"].any()
