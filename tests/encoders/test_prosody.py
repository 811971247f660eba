"""The prosody encoder (openSMILE eGeMAPS functionals) and voice+prosody: the features of known
signals, the composite network's parts, and standardisation with training statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmfuse.data.preparations import get_preparation
from mmfuse.encoders import create_encoder
from mmfuse.models.statistics import fit_input_statistics
from mmfuse.pretrained import BACKBONES
from mmfuse.types import InputSpec

pytest.importorskip("opensmile")
backbones = pytest.importorskip("mmfuse.encoders.backbones")
SR = 16000
F0_MEAN, LOUDNESS_MEAN = "F0semitoneFrom27.5Hz_sma3nz_amean", "loudness_sma3_amean"


def _tone(hz: float, amplitude: float = 0.3, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _feature(values: np.ndarray, name: str) -> float:
    import opensmile

    names = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals).feature_names
    return float(values[names.index(name)])


def test_egemaps_hears_a_tones_pitch_in_semitones() -> None:
    prep = get_preparation("egemaps-88")
    for hz in (110.0, 220.0, 330.0):
        values = prep.finish(prep.decode(_tone(hz), None))
        assert values.shape == (88,) and values.dtype == np.float32
        assert _feature(values, F0_MEAN) == pytest.approx(12 * np.log2(hz / 27.5), abs=0.2)


def test_egemaps_hears_loudness() -> None:
    prep = get_preparation("egemaps-88")
    soft, loud = (prep.finish(_tone(220.0, a)) for a in (0.05, 0.5))
    assert _feature(loud, LOUDNESS_MEAN) > 3 * _feature(soft, LOUDNESS_MEAN)


@pytest.mark.parametrize("wave", [np.zeros(40, np.float32), np.zeros(SR, np.float32), _tone(200.0, seconds=0.01)])
def test_silence_and_tiny_clips_give_finite_features(wave: np.ndarray) -> None:
    values = get_preparation("egemaps-88").finish(wave)
    assert values.shape == (88,) and np.isfinite(values).all()


def test_prosody_network_passes_the_features_through() -> None:
    x = torch.randn(3, 88)
    torch.testing.assert_close(backbones.load_backbone("prosody")(x), x)


def test_voice_plus_prosody_runs_each_part_on_its_piece() -> None:
    if BACKBONES["voice"].missing():
        pytest.skip("voice needs resemblyzer")
    prep = get_preparation("voice-mel+egemaps")
    waves = [_tone(180.0), _tone(400.0, 0.1)]
    flat = np.stack([prep.finish(prep.decode(w, None)) for w in waves])
    assert flat.shape == (2, 4 * 160 * 40 + 88) and prep.shape == (flat.shape[1],)
    with torch.no_grad():
        z = backbones.load_backbone("voice+prosody")(torch.from_numpy(flat))
        voice = backbones.load_backbone("voice")(torch.from_numpy(flat[:, :25600].reshape(2, 4, 160, 40)))
    assert z.shape == (2, BACKBONES["voice+prosody"].dim) == (2, 856)
    torch.testing.assert_close(z[:, :768], voice)
    torch.testing.assert_close(z[:, 768:], torch.from_numpy(flat[:, 25600:]))
    assert prep.fingerprint == "+".join(get_preparation(p).fingerprint for p in prep.parts)


def test_standardisation_makes_the_encoder_blind_to_each_features_units() -> None:
    """Rescaling and shifting a feature in training and test alike changes nothing: the
    encoder sees each feature in standard deviations of the training set."""
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(50, 88, generator=g), torch.randn(4, 88, generator=g)
    scale = torch.logspace(-3, 3, 88)  # from thousandths to thousands (float32 keeps 7 digits)
    shift = scale * torch.linspace(-50, 50, 88)
    spec = InputSpec("audio", (88,), backbone="prosody", features=True)
    outputs = []
    for transform in (lambda x: x, lambda x: x * scale + shift):
        torch.manual_seed(0)
        encoder = create_encoder("audio", "prosody", spec).eval()
        encoder.fit_statistics(transform(train))
        outputs.append(encoder(transform(test)))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-4, rtol=1e-4)


def test_voice_plus_prosody_standardises_only_the_prosody_part() -> None:
    spec = InputSpec("audio", (856,), backbone="voice+prosody", features=True)
    encoder = create_encoder("audio", "voice+prosody", spec)
    x = torch.randn(40, 856) * 5 + 3
    encoder.fit_statistics(x)
    assert torch.equal(encoder.feature_mean[:768], torch.zeros(768))
    assert torch.equal(encoder.feature_std[:768], torch.ones(768))
    torch.testing.assert_close(encoder.feature_mean[768:], x[:, 768:].mean(0))
    torch.testing.assert_close(encoder.feature_std[768:], x[:, 768:].std(0, unbiased=False))


def test_statistics_come_from_present_training_rows_and_are_saved() -> None:
    from mmfuse.models.builder import ModelConfig, build_model

    specs = {"speech": InputSpec("audio", (88,), backbone="prosody", features=True),
             "tabular": InputSpec("tabular", (1,), num_numeric=1)}
    config = ModelConfig(level="feature", fusion="concat", encoders={"speech": "prosody", "tabular": "mlp"},
                         task="classification", num_outputs=2)
    model = build_model(config, specs)
    x = torch.randn(6, 88) + 10
    x[4:] = 1000.0  # absent rows (their values must not count)
    mask = torch.tensor([True] * 4 + [False] * 2)
    fit_input_statistics(model, {"speech": x, "tabular": torch.zeros(6, 1)}, {"speech": mask, "tabular": mask})
    encoder = model.encoders["speech"]
    torch.testing.assert_close(encoder.feature_mean, x[:4].mean(0))
    assert {"encoders.speech.feature_mean", "encoders.speech.feature_std"} <= set(model.state_dict())
    assert "encoders.speech.standardized" not in model.state_dict()  # fixed by the network, not saved


def test_a_constant_feature_keeps_unit_scale() -> None:
    spec = InputSpec("audio", (88,), backbone="prosody", features=True)
    encoder = create_encoder("audio", "prosody", spec)
    x = torch.randn(10, 88)
    x[:, 5] = 7.0
    encoder.fit_statistics(x)
    assert encoder.feature_std[5] == 1.0 and encoder.feature_mean[5] == pytest.approx(7.0)


def test_each_part_is_layer_normed_on_its_own() -> None:
    """Scaling the voice part by 1000 leaves the prosody part's normalised values unchanged:
    one LayerNorm over both would let the larger part set the scale."""
    from mmfuse.encoders.pretrained import PartsNorm

    norm = PartsNorm([768, 88])
    x = torch.randn(2, 856)
    scaled = torch.cat([x[:, :768] * 1000, x[:, 768:]], dim=1)
    torch.testing.assert_close(norm(x)[:, 768:], norm(scaled)[:, 768:])
    torch.testing.assert_close(norm(x)[:, 768:], torch.nn.functional.layer_norm(x[:, 768:], (88,)))


def test_fine_tuned_statistics_come_through_the_network_in_chunks() -> None:
    spec = InputSpec("audio", (88,), backbone="prosody", features=False)  # the prepared input
    encoder = create_encoder("audio", "prosody", spec)
    assert encoder.backbone is not None
    x = torch.randn(300, 88) * 3 + 1
    encoder.fit_statistics(x, max_rows=200, chunk=7)
    rows = x[torch.linspace(0, 299, 200).long()]
    torch.testing.assert_close(encoder.feature_mean, rows.mean(0))
    torch.testing.assert_close(encoder.feature_std, rows.std(0, unbiased=False))
