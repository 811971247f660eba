"""Tests for mmfuse.models.retrieval: the dual encoder's output (embeddings, scale), wiring."""

from __future__ import annotations

import math

import pytest
import torch

from mmfuse.errors import MmfuseError
from mmfuse.models.retrieval import (
    MAX_LOGIT_SCALE,
    RetrievalConfig,
    RetrievalModel,
    build_retrieval_model,
)
from mmfuse.tasks.retrieval import RetrievalTask
from mmfuse.types import InputSpec

SPECS = {
    "photo": InputSpec("image", (3, 8, 8)),
    "caption": InputSpec("text", (6,), vocab_size=20),
    "vec": InputSpec("embedding", (5,)),
}
EMBED_DIM = 8


def config(**changes: object) -> RetrievalConfig:
    base: dict[str, object] = {
        "pair": ("photo", "caption"),
        "encoders": {"photo": "cnn", "caption": "gru", "vec": "raw"},
        "dim": 16,
        "embed_dim": EMBED_DIM,
    }
    return RetrievalConfig(**{**base, **changes})  # type: ignore[arg-type]


def batch(b: int = 4) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = {
        "photo": torch.randn(b, 3, 8, 8, generator=g),
        "caption": torch.randint(1, 20, (b, 6), generator=g),
        "vec": torch.randn(b, 5, generator=g),
    }
    return x, {m: torch.ones(b, dtype=torch.bool) for m in x}


@pytest.fixture
def model() -> RetrievalModel:
    torch.manual_seed(0)
    return build_retrieval_model(config(), SPECS).eval()


def test_output_carries_both_embeddings_and_the_scale_not_logits(model: RetrievalModel) -> None:
    x, mask = batch(4)
    out = model(x, mask)
    assert out.logits is None and out.per_modality is None
    assert out.embeddings is not None and list(out.embeddings) == ["photo", "caption"]
    za, zb = out.embeddings["photo"], out.embeddings["caption"]
    assert za.shape == zb.shape == (4, EMBED_DIM)
    assert torch.allclose(za.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(zb.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.equal(za, model.embed("photo", x["photo"]))
    assert torch.equal(zb, model.embed("caption", x["caption"]))
    assert not torch.allclose(za, zb)
    assert out.logit_scale is not None and out.logit_scale.shape == ()
    assert out.mask is mask
    with pytest.raises(ValueError, match=r"no logits, only embeddings of \['caption', 'photo'\]"):
        out.require_logits()


def test_scale_starts_at_one_over_temperature_and_is_capped(model: RetrievalModel) -> None:
    x, mask = batch(2)
    assert model(x, mask).logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    warm = build_retrieval_model(config(temperature=0.5), SPECS)
    assert warm(x, mask).logit_scale.item() == pytest.approx(2.0, rel=1e-5)
    assert warm.logit_scale().item() == pytest.approx(2.0, rel=1e-5)
    with torch.no_grad():
        model.log_scale.fill_(math.log(1000.0))
    assert model(x, mask).logit_scale.item() == pytest.approx(MAX_LOGIT_SCALE)
    assert MAX_LOGIT_SCALE == 100.0


def test_loss_gradients_reach_both_towers_and_the_scale(model: RetrievalModel) -> None:
    model.train()
    x, mask = batch(4)
    items = torch.arange(4).repeat(2, 1).T
    RetrievalTask(("photo", "caption")).loss(model(x, mask), items)["loss"].backward()
    for name, p in model.named_parameters():
        if name.startswith(("encoders.photo", "encoders.caption", "projections", "log_scale")):
            assert p.grad is not None, name
    for tower in ("photo", "caption"):
        grads = [p.grad for p in model.encoders[tower].parameters() if p.grad is not None]
        assert sum(float(g.abs().sum()) for g in grads) > 0, tower
    assert model.log_scale.grad is not None and model.log_scale.grad.abs().item() > 0


def test_builder_wires_each_encoder_output_dim_into_its_projection() -> None:
    m = build_retrieval_model(config(), SPECS)
    assert set(m.encoders) == {"photo", "caption"}  # only the pair's towers
    for tower in ("photo", "caption"):
        assert m.encoders[tower].output_dim == 16
        assert m.projections[tower].in_features == 16
        assert m.projections[tower].out_features == EMBED_DIM
    raw = build_retrieval_model(config(pair=("vec", "caption"), dim=12), SPECS)
    assert raw.projections["vec"].in_features == 5  # raw: the input width, no dim
    assert raw.projections["caption"].in_features == 12
    x, mask = batch(3)
    embeddings = raw(x, mask).embeddings
    assert {m: z.shape for m, z in embeddings.items()} == {
        "vec": (3, EMBED_DIM), "caption": (3, EMBED_DIM)
    }
    assert raw.output_dim == EMBED_DIM
    assert raw.pair == ("vec", "caption")


def test_encoder_hparams_reach_the_encoder() -> None:
    m = build_retrieval_model(config(encoder_hparams={"photo": {"dim": 24}}), SPECS)
    assert m.encoders["photo"].output_dim == 24
    assert m.projections["photo"].in_features == 24
    assert m.projections["caption"].in_features == 16


def test_unknown_encoder_is_an_mmfuse_error_listing_valid_ones() -> None:
    bad = config(encoders={"photo": "nonesuch", "caption": "gru"})
    with pytest.raises(MmfuseError, match=r"'photo' tower.*unknown image encoder 'nonesuch'.*cnn"):
        build_retrieval_model(bad, SPECS)


def test_config_round_trips_through_a_dict() -> None:
    cfg = config(encoder_hparams={"photo": {"dim": 24}})
    d = cfg.to_dict()
    assert isinstance(d["pair"], tuple)
    d["pair"] = list(d["pair"])  # as JSON gives it back
    again = RetrievalConfig.from_dict(d)
    assert again == cfg
    assert again.pair == ("photo", "caption")


def test_num_parameters_counts_trainable_parameters(model: RetrievalModel) -> None:
    total = sum(p.numel() for p in model.parameters())
    assert model.num_parameters() == total
    for p in model.encoders["photo"].parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in model.encoders["photo"].parameters())
    assert model.num_parameters() == total - frozen
