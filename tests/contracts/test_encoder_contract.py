"""Contract every registered encoder must meet, whatever its kind and name."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from mmfuse.encoders import create_encoder, list_encoders
from mmfuse.pretrained import BACKBONES
from mmfuse.types import InputSpec

B = 3


def spec_and_input(kind: str, batch: int = B) -> tuple[InputSpec, Tensor]:
    """A small InputSpec of ``kind`` and a random input batch that matches it."""
    g = torch.Generator().manual_seed(0)
    if kind == "image":
        return InputSpec("image", (3, 16, 16)), torch.randn(batch, 3, 16, 16, generator=g)
    if kind == "text":
        tokens = torch.randint(1, 30, (batch, 10), generator=g)
        tokens[0, 6:] = 0  # some padding
        return InputSpec("text", (10,), vocab_size=30), tokens
    if kind == "audio":
        return InputSpec("audio", (20, 24)), torch.randn(batch, 20, 24, generator=g)
    if kind == "video":
        return InputSpec("video", (4, 3, 16, 16)), torch.randn(batch, 4, 3, 16, 16, generator=g)
    if kind == "tabular":
        spec = InputSpec("tabular", (4,), num_numeric=2, cardinalities=(5, 3))
        numeric = torch.randn(batch, 2, generator=g)
        codes = [torch.randint(0, c, (batch, 1), generator=g).float() for c in (5, 3)]
        return spec, torch.cat([numeric, *codes], dim=1)
    if kind == "embedding":
        return InputSpec("embedding", (10,)), torch.randn(batch, 10, generator=g)
    raise AssertionError(f"no test input for kind {kind!r}")


def features_and_input(kind: str, name: str, batch: int = B) -> tuple[InputSpec, Tensor]:
    """Pretrained encoders in their default (frozen) form take the network's features."""
    g = torch.Generator().manual_seed(0)
    shape = (4, BACKBONES[name].dim) if kind == "video" else (BACKBONES[name].dim,)
    return InputSpec(kind, shape, backbone=name, features=True), torch.randn(batch, *shape, generator=g)


@pytest.fixture(params=list_encoders())
def encoder_case(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    kind, name = request.param.split("/", 1)
    spec, x = features_and_input(kind, name) if name in BACKBONES else spec_and_input(kind)
    torch.manual_seed(0)
    return create_encoder(kind, name, spec), x


def test_every_kind_has_an_input_helper() -> None:
    for key in list_encoders():
        spec_and_input(key.split("/", 1)[0])


def test_output_shape_and_finite(encoder_case) -> None:  # type: ignore[no-untyped-def]
    encoder, x = encoder_case
    assert isinstance(encoder.output_dim, int)
    out = encoder(x)
    assert out.shape == (B, encoder.output_dim)
    assert torch.isfinite(out).all()


def test_deterministic_in_eval_mode(encoder_case) -> None:  # type: ignore[no-untyped-def]
    encoder, x = encoder_case
    encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), encoder(x), rtol=0, atol=0)


def test_gradients_reach_parameters(encoder_case) -> None:  # type: ignore[no-untyped-def]
    encoder, x = encoder_case
    params = [p for p in encoder.parameters() if p.requires_grad]
    if not params:
        pytest.skip("encoder has no trainable parameters")
    encoder.train()
    weights = torch.randn(B, encoder.output_dim, generator=torch.Generator().manual_seed(1))
    (encoder(x) * weights).sum().backward()
    grads = [p.grad for p in params]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads if g is not None)


def test_unknown_encoder_name_lists_valid_ones() -> None:
    spec, _ = spec_and_input("image")
    with pytest.raises(KeyError, match="cnn"):
        create_encoder("image", "no-such-encoder", spec)


@pytest.mark.parametrize("key", list_encoders())
def test_every_encoder_declares_what_it_reads(key: str) -> None:
    from mmfuse.encoders import DECODED, ENCODERS, FEATURES, reads

    declared = reads(ENCODERS.get(key))
    assert declared and set(declared) <= {DECODED, FEATURES}


def test_frozen_features_choose_the_vector_form_or_are_refused() -> None:
    from mmfuse.encoders.raw import EmbeddingRawEncoder

    features = InputSpec("image", (8, 20), backbone="efficientnet-lite0", features=True)
    raw = create_encoder("image", "raw", features)
    assert isinstance(raw, EmbeddingRawEncoder) and raw.output_dim == 160
    with pytest.raises(KeyError, match="reads decoded image input, not the features of a frozen efficientnet-lite0"):
        create_encoder("image", "cnn", features)
