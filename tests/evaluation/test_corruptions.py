"""Every registered corruption: identity at 0, damage at 1, seeded, shape/dtype/range kept."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mmfuse.data.preprocess import Encoded
from mmfuse.evaluation import corruptions as C
from mmfuse.evaluation.corruptions import CORRUPTIONS, DROP, drop_modality, list_corruptions
from mmfuse.errors import MmfuseError

TEXT = "the parcel arrived quickly and the colour is wonderful"


def sample(kind: str) -> Any:
    """A decoded value of ``kind`` as the preprocessor hands it to the corruption hook."""
    g = np.random.default_rng(123)
    if kind == "image":
        return g.random((3, 16, 16), dtype=np.float32)
    if kind == "video":
        return g.random((6, 3, 8, 8), dtype=np.float32)
    if kind == "audio":
        t = np.arange(16000) / 16000
        return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    if kind == "text":
        return TEXT
    if kind == "embedding":
        return g.standard_normal(12).astype(np.float32)
    tab = g.standard_normal((40, 5)).astype(np.float32)
    tab[:, 3:] = g.integers(0, 5, (40, 2))  # two categorical code columns
    return tab


CONTEXT = {"tabular": {"num_numeric": 3}}
CASES = [(kind, name) for kind, fns in CORRUPTIONS.items() for name in fns]


def apply(kind: str, name: str, value: Any, severity: float, seed: int = 0) -> Any:
    fn = CORRUPTIONS[kind][name]
    return fn(value, severity, np.random.default_rng(seed), **CONTEXT.get(kind, {}))


def same(a: Any, b: Any) -> bool:
    return a == b if isinstance(a, str) else np.array_equal(a, b)


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_identity_at_zero_damage_at_one_and_seeded(kind: str, name: str) -> None:
    x = sample(kind)
    before = x if isinstance(x, str) else x.copy()
    assert apply(kind, name, x, 0.0) is x
    hit = apply(kind, name, x, 1.0)
    assert not same(hit, x)
    assert same(apply(kind, name, x, 1.0), hit)  # same seed, same result
    if name != "blur":  # blur is the one corruption that draws nothing
        assert not same(apply(kind, name, x, 0.6, seed=1), apply(kind, name, x, 0.6, seed=2))
    assert same(x, before)  # the input is never modified
    if not isinstance(x, str):
        for s in (0.3, 1.0):
            out = apply(kind, name, x, s)
            assert out.shape == x.shape and out.dtype == x.dtype
            if kind in ("image", "video"):
                assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("severity", [-0.1, 1.5, float("nan")])
def test_severity_outside_unit_interval_raises(severity: float) -> None:
    with pytest.raises(ValueError, match="severity"):
        C.blur(sample("image"), severity, np.random.default_rng(0))


def test_registry_lists_drop_and_rejects_unknown_kinds() -> None:
    assert list_corruptions("text") == ["word_drop", "typos", DROP]
    assert set(CORRUPTIONS["video"]) == {"frame_drop", "gaussian_noise", "blur", "occlusion"}
    with pytest.raises(MmfuseError, match="choose one of: image"):
        list_corruptions("smell")


@pytest.mark.parametrize("severity", [0.1, 0.5, 1.0])
def test_audio_noise_hits_the_target_snr(severity: float) -> None:
    x = sample("audio")
    noisy = C.audio_noise(x, severity, np.random.default_rng(0))
    noise = noisy.astype(np.float64) - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2))
    assert abs(snr - (40 - 45 * severity)) < 0.5


def test_audio_dropout_zeroes_that_fraction_in_50_ms_chunks() -> None:
    x = np.ones(16000, dtype=np.float32)
    out = C.audio_dropout(x, 0.4, np.random.default_rng(0), sample_rate=16000)
    assert np.mean(out == 0) == pytest.approx(0.4)
    starts = np.flatnonzero(np.diff(np.r_[1.0, out]) < 0)
    assert np.all(starts % 800 == 0)  # chunks of 800 samples = 50 ms


def test_word_drop_at_one_leaves_no_words_and_nests() -> None:
    assert C.word_drop(TEXT, 1.0, np.random.default_rng(0)) == ""
    half = C.word_drop(TEXT, 0.5, np.random.default_rng(4)).split()
    quarter = C.word_drop(TEXT, 0.25, np.random.default_rng(4)).split()
    assert set(half) <= set(quarter) and len(half) < len(TEXT.split())


def test_typos_change_every_word_at_one_by_one_edit() -> None:
    words = "abcdef ghijkl mnopqr".split()
    out = C.typos(" ".join(words), 1.0, np.random.default_rng(0)).split()
    assert len(out) == len(words)
    for before, after in zip(words, out):
        assert after != before and abs(len(after) - len(before)) <= 1


def test_image_corruptions_by_hand() -> None:
    x = np.zeros((3, 10, 10), dtype=np.float32)
    grey = C.occlusion(x, 0.25, np.random.default_rng(0))
    assert np.count_nonzero(grey[0] == 0.5) == 25  # a 5x5 square = a quarter of the area
    assert np.array_equal(C.occlusion(x, 1.0, np.random.default_rng(0)), np.full_like(x, 0.5))
    dot = x.copy()
    dot[:, 5, 5] = 1.0
    blurred = C.blur(dot, 0.5, np.random.default_rng(0))
    assert blurred[0, 5, 5] < 1.0 and blurred[0, 5, 6] > 0.0
    assert blurred.sum() == pytest.approx(3.0, rel=1e-4)  # blurring keeps the mass
    noisy = C.gaussian_noise(np.full((3, 64, 64), 0.5, np.float32), 0.2, np.random.default_rng(0))
    assert np.std(noisy) == pytest.approx(0.1, rel=0.05)  # sigma = 0.5 * s


def test_frame_drop_repeats_the_previous_kept_frame_or_black() -> None:
    x = np.stack([np.full((3, 2, 2), 0.1 * (i + 1), np.float32) for i in range(8)])
    out = C.frame_drop(x, 0.5, np.random.default_rng(0))
    levels = out[:, 0, 0, 0]
    kept = np.isclose(levels, x[:, 0, 0, 0])
    assert kept.sum() == 4
    for i in np.flatnonzero(~kept):
        earlier = np.flatnonzero(kept[:i])
        assert levels[i] == (x[earlier[-1], 0, 0, 0] if earlier.size else 0.0)
    assert np.all(C.frame_drop(x, 1.0, np.random.default_rng(0)) == 0.0)


def test_tabular_corruptions_touch_the_right_columns() -> None:
    x = sample("tabular")
    noisy = C.tabular_noise(x, 0.5, np.random.default_rng(0), num_numeric=3)
    assert np.array_equal(noisy[:, 3:], x[:, 3:])
    assert np.std(noisy[:, :3] - x[:, :3]) == pytest.approx(1.0, rel=0.2)  # sigma = 2 * s
    fill = np.array([7.0, 8.0, 9.0], np.float32)
    gone = C.tabular_missing(x, 1.0, np.random.default_rng(0), num_numeric=3, fill=fill)
    assert np.all(gone[:, :3] == fill) and np.all(gone[:, 3:] == 0)
    some = C.tabular_missing(x, 0.3, np.random.default_rng(0), num_numeric=3)
    changed = some != x
    assert 0.15 < changed.mean() < 0.45 and np.all(some[changed] == 0)


def test_drop_modality_clears_that_fraction_of_one_mask() -> None:
    n = 20
    enc = Encoded(
        {"a": np.ones((n, 3), np.float32), "b": np.ones((n, 2), np.float32)},
        {"a": np.ones(n, bool), "b": np.ones(n, bool)},
        np.arange(n),
        np.zeros(n, np.float32),
    )
    out = drop_modality(enc, "a", 0.25, np.random.default_rng(0))
    assert (~out.mask["a"]).sum() == 5 and out.mask["b"].all()
    assert np.all(out.inputs["a"][~out.mask["a"]] == 0) and enc.mask["a"].all()
    assert drop_modality(enc, "a", 0.0, np.random.default_rng(0)).mask["a"].all()
    assert not drop_modality(enc, "a", 1.0, np.random.default_rng(0)).mask["a"].any()
