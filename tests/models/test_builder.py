"""Tests for mmfuse.models.builder: fusion/encoder resolution and model wiring per level."""

from __future__ import annotations

import pytest
import torch

from mmfuse.encoders import ENCODERS
from mmfuse.errors import MmfuseError
from mmfuse.fusion import list_fusions
from mmfuse.models import ModelConfig, ModelOutput, build_model
from mmfuse.models.builder import resolve_encoders, resolve_fusion
from mmfuse.types import InputSpec

MODALITIES = {"photo": "image", "review": "text", "tabular": "tabular", "vec": "embedding"}
SPECS = {
    "photo": InputSpec("image", (3, 8, 8)),
    "review": InputSpec("text", (6,), vocab_size=20),
    "tabular": InputSpec("tabular", (3,), num_numeric=2, cardinalities=(4,)),
    "vec": InputSpec("embedding", (5,)),
}


def inputs(b: int = 3) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = {
        "photo": torch.randn(b, 3, 8, 8, generator=g),
        "review": torch.randint(0, 20, (b, 6), generator=g),
        "tabular": torch.cat([torch.randn(b, 2, generator=g), torch.ones(b, 1)], 1),
        "vec": torch.randn(b, 5, generator=g),
    }
    mask = {m: torch.ones(b, dtype=torch.bool) for m in x}
    mask["photo"][0] = False
    mask["review"][1] = False
    return x, mask


@pytest.mark.parametrize(
    ("level", "fusion", "expected"),
    [
        (None, None, ("feature", "attention")),
        ("early", None, ("early", "early_concat")),
        ("feature", None, ("feature", "attention")),
        ("late", None, ("late", "mean")),
        (None, "concat", ("feature", "concat")),
        (None, "weighted_sum", ("feature", "weighted_sum")),
        (None, "early_concat", ("early", "early_concat")),
        (None, "mean", ("late", "mean")),
        ("late", "mean", ("late", "mean")),
    ],
)
def test_resolve_fusion(level: str | None, fusion: str | None, expected: tuple[str, str]) -> None:
    assert resolve_fusion(level, fusion) == expected


def test_resolve_fusion_errors() -> None:
    with pytest.raises(
        MmfuseError, match="fusion 'mean' is a late-level operator, not feature-level"
    ):
        resolve_fusion("feature", "mean")
    with pytest.raises(
        MmfuseError, match="fusion 'concat' is a feature-level operator, not early-level"
    ):
        resolve_fusion("early", "concat")
    names = ", ".join(list_fusions())
    with pytest.raises(MmfuseError, match=f"unknown fusion 'no_such_fusion'; choose one of: {names}"):
        resolve_fusion(None, "no_such_fusion")
    with pytest.raises(
        MmfuseError, match="unknown level 'middle'; choose one of: early, feature, late"
    ):
        resolve_fusion("middle", None)


def test_resolve_encoders_defaults_and_early_level() -> None:
    assert resolve_encoders(MODALITIES, "feature") == {
        "photo": "cnn", "review": "gru", "tabular": "mlp", "vec": "mlp",
    }  # fmt: skip
    assert resolve_encoders(MODALITIES, "late") == resolve_encoders(MODALITIES, "feature")
    early = resolve_encoders(MODALITIES, "early", {"text": "transformer"})
    assert early == {m: "raw" for m in MODALITIES}


def test_resolve_encoders_overrides_by_kind_and_by_modality() -> None:
    mods = {"a": "text", "b": "text", "c": "image"}
    assert resolve_encoders(mods, "feature", {"text": "transformer"}) == {
        "a": "transformer", "b": "transformer", "c": "cnn",
    }  # fmt: skip
    # a modality name wins over its kind
    assert resolve_encoders(mods, "feature", {"text": "transformer", "b": "gru"}) == {
        "a": "transformer", "b": "gru", "c": "cnn",
    }  # fmt: skip


def test_resolve_encoders_unknown_key_lists_modalities() -> None:
    with pytest.raises(
        MmfuseError,
        match=r"--encoder: 'audio' is neither a modality nor a kind in this data; "
        r"modalities: photo \(image\), review \(text\), tabular \(tabular\), vec \(embedding\)",
    ):
        resolve_encoders(MODALITIES, "feature", {"audio": "gru"})


def test_unknown_encoder_name_is_an_mmfuse_error() -> None:
    config = ModelConfig("feature", "concat", {"photo": "resnet"}, "classification", 2, dim=8)
    with pytest.raises(
        MmfuseError, match="unknown image encoder 'resnet'; choose one of: cnn, efficientnet-lite0, raw"
    ):
        build_model(config, {"photo": SPECS["photo"]})


@pytest.mark.parametrize(
    ("level", "fusion"),
    [("early", "early_concat"), ("feature", "concat"), ("feature", "attention"),
     ("feature", "weighted_sum"), ("late", "mean")],
)  # fmt: skip
@pytest.mark.parametrize(("task", "outputs"), [("classification", 3), ("regression", 1)])
def test_build_model_output_shape(level: str, fusion: str, task: str, outputs: int) -> None:
    torch.manual_seed(0)
    config = ModelConfig(level, fusion, resolve_encoders(MODALITIES, level), task, outputs, dim=16)
    model = build_model(config, SPECS)
    assert model.level == level and model.modalities == sorted(MODALITIES)
    x, mask = inputs()
    out = model(x, mask)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, outputs)
    assert torch.isfinite(out.logits).all()
    if level == "late":
        assert model.head is None
        assert set(out.per_modality) == set(MODALITIES)
        assert all(v.shape == (3, outputs) for v in out.per_modality.values())
    else:
        assert out.per_modality is None and model.head is not None
    embeddings = model.encode(x, mask)
    assert set(embeddings) == set(MODALITIES)
    assert not embeddings["photo"][0].any() and not embeddings["review"][1].any()  # masked rows
    out.logits.sum().backward()
    assert any(p.grad is not None for p in model.parameters())
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_early_level_uses_raw_encoders_without_deep_layers() -> None:
    config = ModelConfig(
        "early", "early_concat", resolve_encoders(MODALITIES, "early"), "classification", 2, dim=8
    )
    model = build_model(config, SPECS)
    for m, kind in MODALITIES.items():
        assert type(model.encoders[m]) is ENCODERS.get(f"{kind}/raw"), m


def test_dim_reaches_encoders_and_hparams_override_it() -> None:
    config = ModelConfig(
        "feature", "concat", {"vec": "mlp", "tabular": "mlp"}, "classification", 2, dim=12,
        encoder_hparams={"vec": {"dim": 7}},
    )  # fmt: skip
    model = build_model(config, {m: SPECS[m] for m in ("vec", "tabular")})
    assert model.encoders["tabular"].output_dim == 12
    assert model.encoders["vec"].output_dim == 7


def test_config_round_trip() -> None:
    config = ModelConfig(
        "late", "mean", {"vec": "mlp"}, "regression", 1, dim=8, encoder_hparams={"vec": {"dim": 4}}
    )
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_same_seed_same_weights() -> None:
    config = ModelConfig(
        "feature", "attention", resolve_encoders(MODALITIES, "feature"), "classification", 2, dim=8
    )
    torch.manual_seed(3)
    a = build_model(config, SPECS).state_dict()
    torch.manual_seed(3)
    b = build_model(config, SPECS).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
