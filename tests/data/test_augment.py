"""Tests for mmfuse.data.augment: shapes, identity, label safety, determinism."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from mmfuse.data.augment import augment_batch
from mmfuse.types import InputSpec

SPECS = {
    "image": InputSpec("image", (3, 8, 8)),
    "video": InputSpec("video", (2, 3, 8, 8)),
    "audio": InputSpec("audio", (8, 20)),
    "text": InputSpec("text", (10,), vocab_size=50),
    "tabular": InputSpec("tabular", (4,), num_numeric=2, cardinalities=(5, 3)),
    "vec": InputSpec("embedding", (6,)),
}


def batch(b: int = 4) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(0)
    text = torch.randint(2, 50, (b, 10), generator=g)
    text[:, 6:] = 0  # padding
    text[0, 2] = 1  # an unknown token already
    tabular = torch.cat(
        [torch.randn(b, 2, generator=g), torch.randint(0, 5, (b, 2), generator=g).float()], 1
    )
    return {
        "image": torch.randn(b, 3, 8, 8, generator=g),
        "video": torch.randn(b, 2, 3, 8, 8, generator=g),
        "audio": torch.randn(b, 8, 20, generator=g),
        "text": text,
        "tabular": tabular,
        "vec": torch.randn(b, 6, generator=g),
    }


@pytest.mark.parametrize("level", ["light", "strong"])
def test_shapes_and_dtypes_preserved_and_inputs_untouched(level: str) -> None:
    x = batch()
    before = {m: v.clone() for m, v in x.items()}
    out = augment_batch(x, SPECS, level, torch.Generator().manual_seed(1))
    assert set(out) == set(x)
    for m in x:
        assert out[m].shape == x[m].shape and out[m].dtype == x[m].dtype, m
        assert torch.isfinite(out[m].float()).all(), m
        assert torch.equal(x[m], before[m]), f"{m}: the input batch was modified"
    for m in ("image", "video", "audio", "tabular"):
        assert not torch.equal(out[m], x[m]), f"{m} should be augmented at level {level}"
    assert torch.equal(out["vec"], x["vec"])  # embeddings are never augmented


def test_none_is_identity() -> None:
    x = batch()
    out = augment_batch(x, SPECS, "none", torch.Generator().manual_seed(1))
    assert all(out[m] is x[m] for m in x)


def test_text_padding_never_changes_and_tokens_only_become_unknown() -> None:
    x = batch(64)
    out = augment_batch(x, SPECS, "strong", torch.Generator().manual_seed(3))["text"]
    pad = x["text"] == 0
    assert torch.equal(out[pad], x["text"][pad])
    changed = out != x["text"]
    assert changed.any()  # 20 % of 384 real tokens: some change
    assert (out[changed] == 1).all()
    assert not (changed & pad).any()


def test_tabular_categorical_codes_never_change() -> None:
    x = batch(16)
    out = augment_batch(x, SPECS, "strong", torch.Generator().manual_seed(4))["tabular"]
    assert torch.equal(out[:, 2:], x["tabular"][:, 2:])
    noise = out[:, :2] - x["tabular"][:, :2]
    assert 0 < noise.abs().max() < 1.0  # N(0, 0.1)


def test_audio_masks_one_frequency_band_and_one_time_band() -> None:
    x = {"audio": torch.randn(2, 8, 20) + 10.0}  # no value is 0 before masking
    out = augment_batch(x, SPECS, "light", torch.Generator().manual_seed(5))["audio"]
    zero = out == 0
    assert zero.all(dim=2).any(dim=1).all()  # a whole frequency row is zeroed in each sample
    assert zero.all(dim=1).any(dim=1).all()  # and a whole time column


@pytest.mark.parametrize("level", ["light", "strong"])
def test_same_generator_seed_same_result(level: str) -> None:
    x = batch()
    a = augment_batch(x, SPECS, level, torch.Generator().manual_seed(7))
    b = augment_batch(x, SPECS, level, torch.Generator().manual_seed(7))
    c = augment_batch(x, SPECS, level, torch.Generator().manual_seed(8))
    assert all(torch.equal(a[m], b[m]) for m in x)
    assert any(not torch.equal(a[m], c[m]) for m in x)


def test_global_seed_does_not_matter() -> None:
    x = batch()
    torch.manual_seed(0)
    a = augment_batch(x, SPECS, "light", torch.Generator().manual_seed(7))
    torch.manual_seed(123)
    b = augment_batch(x, SPECS, "light", torch.Generator().manual_seed(7))
    assert all(torch.equal(a[m], b[m]) for m in x)
