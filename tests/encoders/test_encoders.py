"""Behaviour of each encoder: shapes, gradients, padding, temporal pooling, raw values."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from mmfuse.encoders import create_encoder
from mmfuse.encoders.tabular_mlp import embedding_size
from mmfuse.types import InputSpec

TEXT_SPEC = InputSpec("text", (12,), vocab_size=40)


def assert_trains(encoder: nn.Module, x: Tensor) -> Tensor:
    """Forward in train mode, check shape and finiteness, and that every parameter gets a grad."""
    encoder.train()
    out = encoder(x)
    assert out.shape == (x.shape[0], encoder.output_dim)
    assert torch.isfinite(out).all()
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"
    return out


@pytest.mark.parametrize("hw", [(8, 8), (32, 32), (24, 40)])
def test_image_cnn_any_size(hw: tuple[int, int]) -> None:
    enc = create_encoder("image", "cnn", InputSpec("image", (3, *hw)), dim=16)
    assert enc.output_dim == 16
    assert_trains(enc, torch.randn(4, 3, *hw))


def test_image_cnn_rejects_bad_spec() -> None:
    with pytest.raises(ValueError, match="C, H, W"):
        create_encoder("image", "cnn", InputSpec("image", (32, 32)))


@pytest.mark.parametrize("name", ["cnn", "gru"])
def test_audio_encoders(name: str) -> None:
    enc = create_encoder("audio", name, InputSpec("audio", (40, 100)))
    assert enc.output_dim == 128
    assert_trains(enc, torch.randn(3, 40, 100))


def text_batch() -> Tensor:
    return torch.tensor(
        [[5, 6, 7, 8, 0, 0], [9, 3, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]]
    )


@pytest.mark.parametrize("name", ["gru", "transformer"])
def test_text_encoders_train(name: str) -> None:
    torch.manual_seed(0)
    enc = create_encoder("text", name, TEXT_SPEC)
    x = text_batch()
    # padding_idx rows get no gradient by design; check the other parameters only
    out = enc.train()(x)
    (out * torch.randn(out.shape)).sum().backward()
    for pname, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    assert out.shape == (4, 128)


@pytest.mark.parametrize("name", ["gru", "transformer"])
def test_text_all_padding_row_is_finite_zeros(name: str) -> None:
    enc = create_encoder("text", name, TEXT_SPEC).eval()
    out = enc(text_batch())
    assert torch.isfinite(out).all()
    assert (out[2] == 0).all()
    assert out[0].abs().sum() > 0


@pytest.mark.parametrize("name", ["gru", "transformer"])
def test_text_padding_invariance(name: str) -> None:
    torch.manual_seed(0)
    enc = create_encoder("text", name, TEXT_SPEC).eval()
    x = text_batch()
    longer = torch.cat([x, torch.zeros(4, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(enc(longer), enc(x), rtol=1e-5, atol=1e-6)


def test_text_gru_depends_on_token_order() -> None:
    enc = create_encoder("text", "gru", TEXT_SPEC).eval()
    x = torch.tensor([[5, 6, 7, 0]])
    assert not torch.allclose(enc(x), enc(torch.tensor([[7, 6, 5, 0]])))


def test_text_transformer_rejects_too_long_input() -> None:
    enc = create_encoder("text", "transformer", InputSpec("text", (4,), vocab_size=10))
    with pytest.raises(ValueError, match="at most 4"):
        enc(torch.ones(1, 5, dtype=torch.long))


VIDEO_SPEC = InputSpec("video", (4, 3, 16, 16))


@pytest.mark.parametrize("temporal", ["mean", "gru", "attention"])
def test_video_temporal_options(temporal: str) -> None:
    enc = create_encoder("video", "cnn", VIDEO_SPEC, dim=32, temporal=temporal)
    assert enc.output_dim == 32
    assert_trains(enc, torch.randn(2, 4, 3, 16, 16))


@pytest.mark.parametrize("temporal", ["mean", "attention"])
def test_video_identical_frames_pool_to_the_frame(temporal: str) -> None:
    enc = create_encoder("video", "cnn", VIDEO_SPEC, temporal=temporal).eval()
    frame = torch.randn(2, 3, 16, 16)
    video = frame.unsqueeze(1).expand(2, 4, 3, 16, 16)
    expected = enc.proj(enc.frame_encoder(frame))
    torch.testing.assert_close(enc(video), expected, rtol=1e-5, atol=1e-5)


def test_video_mean_ignores_frame_order_but_gru_does_not() -> None:
    x = torch.randn(2, 4, 3, 16, 16)
    flipped = x.flip(1)
    mean = create_encoder("video", "cnn", VIDEO_SPEC, temporal="mean").eval()
    gru = create_encoder("video", "cnn", VIDEO_SPEC, temporal="gru").eval()
    torch.testing.assert_close(mean(flipped), mean(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(gru(flipped), gru(x), atol=1e-5)


def test_video_unknown_temporal_names_choices() -> None:
    with pytest.raises(ValueError, match="mean, gru, attention"):
        create_encoder("video", "cnn", VIDEO_SPEC, temporal="max")


@pytest.mark.parametrize(
    ("num_numeric", "cardinalities"), [(3, (5, 100)), (0, (4,)), (2, ())]
)
def test_tabular_mlp(num_numeric: int, cardinalities: tuple[int, ...]) -> None:
    width = num_numeric + len(cardinalities)
    spec = InputSpec("tabular", (width,), num_numeric=num_numeric, cardinalities=cardinalities)
    enc = create_encoder("tabular", "mlp", spec)
    numeric = torch.randn(5, num_numeric)
    codes = [torch.randint(0, c, (5, 1)).float() for c in cardinalities]
    assert_trains(enc, torch.cat([numeric, *codes], dim=1))
    assert [e.embedding_dim for e in enc.embeddings] == [embedding_size(c) for c in cardinalities]


def test_tabular_embedding_sizes() -> None:
    assert [embedding_size(c) for c in (1, 2, 5, 30, 100)] == [2, 2, 4, 16, 16]


def test_tabular_mlp_uses_categorical_codes() -> None:
    spec = InputSpec("tabular", (2,), num_numeric=1, cardinalities=(6,))
    enc = create_encoder("tabular", "mlp", spec).eval()
    a, b = enc(torch.tensor([[0.5, 2.0]])), enc(torch.tensor([[0.5, 3.0]]))
    assert not torch.allclose(a, b)


def test_tabular_without_features_raises() -> None:
    with pytest.raises(ValueError, match="no numeric"):
        create_encoder("tabular", "mlp", InputSpec("tabular", (0,)))


def test_embedding_encoders() -> None:
    spec = InputSpec("embedding", (10,))
    x = torch.randn(3, 10)
    assert_trains(create_encoder("embedding", "mlp", spec, dim=8), x)
    identity = create_encoder("embedding", "identity", spec)
    assert identity.output_dim == 10
    assert identity(x) is x


# --- raw encoders: no parameters, exact values -------------------------------------------


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("image", InputSpec("image", (3, 32, 32))),
        ("text", InputSpec("text", (8,), vocab_size=20)),
        ("audio", InputSpec("audio", (40, 100))),
        ("video", InputSpec("video", (8, 3, 32, 32))),
        ("tabular", InputSpec("tabular", (3,), num_numeric=1, cardinalities=(3, 2))),
        ("embedding", InputSpec("embedding", (7,))),
    ],
)
def test_raw_encoders_have_no_parameters(kind: str, spec: InputSpec) -> None:
    enc = create_encoder(kind, "raw", spec)
    assert sum(p.numel() for p in enc.parameters()) == 0
    expected = {"image": 192, "text": 20, "audio": 80, "video": 192, "tabular": 6,
                "embedding": 7}
    assert enc.output_dim == expected[kind]


def test_text_raw_bag_of_words() -> None:
    enc = create_encoder("text", "raw", InputSpec("text", (4,), vocab_size=5))
    out = enc(torch.tensor([[2, 3, 2, 0], [0, 0, 0, 0], [4, 4, 4, 4]]))
    expected = torch.tensor(
        [[0, 0, 2 / 3, 1 / 3, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0]]
    )
    torch.testing.assert_close(out, expected)


def test_image_raw_pools_to_8x8() -> None:
    enc = create_encoder("image", "raw", InputSpec("image", (3, 16, 16)))
    small = torch.arange(3 * 64, dtype=torch.float32).view(1, 3, 8, 8)
    big = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # each pixel -> 2x2
    torch.testing.assert_close(enc(big), small.flatten(1))


def test_audio_raw_mean_and_std() -> None:
    enc = create_encoder("audio", "raw", InputSpec("audio", (2, 2)))
    out = enc(torch.tensor([[[1.0, 3.0], [2.0, 2.0]]]))
    torch.testing.assert_close(out, torch.tensor([[2.0, 2.0, 1.0, 0.0]]))


def test_video_raw_mean_frame() -> None:
    enc = create_encoder("video", "raw", InputSpec("video", (2, 3, 8, 8)))
    video = torch.stack([torch.zeros(3, 8, 8), torch.full((3, 8, 8), 4.0)]).unsqueeze(0)
    torch.testing.assert_close(enc(video), torch.full((1, 192), 2.0))


def test_tabular_raw_one_hot() -> None:
    enc = create_encoder(
        "tabular", "raw", InputSpec("tabular", (3,), num_numeric=1, cardinalities=(3, 2))
    )
    out = enc(torch.tensor([[0.5, 2.0, 1.0], [-1.0, 0.0, 0.0]]))
    expected = torch.tensor([[0.5, 0, 0, 1, 0, 1], [-1.0, 1, 0, 0, 1, 0]])
    torch.testing.assert_close(out, expected)


def test_embedding_raw_is_identity() -> None:
    enc = create_encoder("embedding", "raw", InputSpec("embedding", (4,)))
    x = torch.randn(2, 4)
    torch.testing.assert_close(enc(x), x)
