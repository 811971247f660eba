"""What each preset tries."""

from __future__ import annotations

from mmfuse.fusion import fusion_level
from mmfuse.search.presets import PRESETS


def test_best_tries_feature_and_decision_level_with_and_without_pretrained_features() -> None:
    cands = PRESETS["best"].candidates(modalities=3, has_pretrained=True)
    # per source: 6 feature-level operators x 3 dropouts + 5 combiners = 23; two sources
    assert len(cands) == 46
    assert {c.features for c in cands} == {"default", "scratch"}
    assert cands[0].name == "feature/attention md=0.15 pretrained"
    for c in cands:
        assert fusion_level(c.params["fusion"]) == c.params["level"]
        assert (c.params["modality_dropout"] > 0) == (c.params["level"] == "feature")
    # the five combiners of one source share one set of trained networks
    late = [c for c in cands if c.late and c.features == "default"]
    assert len({c.shared_training for c in late}) == 1
    assert len({c.shared_training for c in cands if not c.late}) == 36


def test_medium_stays_on_the_pretrained_features() -> None:
    cands = PRESETS["medium"].candidates(modalities=3, has_pretrained=True)
    assert len(cands) == 8 and {c.features for c in cands} == {"default"}
    assert [c.name for c in cands][:3] == ["feature/attention md=0.3", "feature/concat md=0.3", "feature/gated md=0.3"]


def test_without_pretrained_features_there_is_one_source_and_no_suffix() -> None:
    cands = PRESETS["best"].candidates(modalities=2, has_pretrained=False)
    assert len(cands) == 23 and {c.features for c in cands} == {"default"}
    assert [c.name for c in cands][:2] == ["feature/attention md=0.15", "feature/attention md=0.3"]


def test_one_modality_has_nothing_to_drop_or_combine() -> None:
    assert [c.name for c in PRESETS["fast"].candidates(1, False)] == ["feature/attention"]
    assert [c.params for c in PRESETS["best"].candidates(1, True)] == [
        {"level": "feature", "fusion": "attention"}, {"level": "feature", "fusion": "attention"}]


def test_presets_grow_from_fast_to_best() -> None:
    sizes = [len(PRESETS[p].candidates(3, True)) for p in ("fast", "medium", "best")]
    assert sizes == [4, 8, 2 * (6 * 3 + 5)]
    assert [len(PRESETS[p].rungs) for p in ("fast", "medium", "best")] == [1, 2, 3]
