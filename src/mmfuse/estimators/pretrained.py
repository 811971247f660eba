"""Which modalities use pretrained networks, frozen or fine-tuned, and their feature source.

``plan_pretrained`` turns an estimator's parameters (``encoders``, ``pretrained``, ``finetune``)
into ``{modality: PretrainedInput}`` for the Preprocessor: an explicit ``--encoder`` wins;
otherwise kinds in ``DEFAULT_PRETRAINED`` (``PREDICTION_PRETRAINED`` for a model with a target)
use their pretrained network where its packages are installed, and fall back to the next default
or the from-scratch encoder with a one-line notice where not.
``feature_source`` makes the frozen networks and the feature cache that a Preprocessor is built
with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mmfuse._progress import log
from mmfuse.data.preprocess import FeatureSource, PretrainedInput, Preprocessor
from mmfuse.data.schema import parse_pairs
from mmfuse.encoders import DEFAULT_ENCODERS
from mmfuse.errors import MmfuseError
from mmfuse.models.builder import resolve_fusion
from mmfuse.pretrained import BACKBONES, backbone_of, default_pretrained

if TYPE_CHECKING:
    from mmfuse.data.cache import FeatureCache
    from mmfuse.estimators.pipeline import PipelineOptions

CLIP_BATCH = 4
"""Clips per forward pass when a frozen image network encodes video frames."""


def plan_pretrained(est: PipelineOptions, modalities: Mapping[str, str], predicting: bool = False) -> dict[str, PretrainedInput]:
    """Modality -> how it feeds a pretrained network (empty at the early level); ``predicting``
    (a model with a target) takes ``PREDICTION_PRETRAINED``'s defaults."""
    level, _ = resolve_fusion(est.level, est.fusion)
    finetune = _finetune_names(est.finetune)
    if level == "early":
        if finetune:
            raise MmfuseError("--finetune needs feature- or decision-level fusion; the early "
                              "level feeds raw inputs to one shared encoder")
        return {}
    overrides = parse_pairs(est.encoders, "--encoder")
    plan = {}
    for m, kind in modalities.items():
        name = overrides.get(m) or overrides.get(kind)
        if name is None and est.pretrained:
            name = _default(kind, est.verbose, predicting)
        info = backbone_of(kind, name) if name else None
        if info is None:
            continue
        info.require(f"modality {m!r}")
        frozen = m not in finetune and kind not in finetune
        plan[m] = PretrainedInput(info.name, info.preparations[kind], frozen, info.dim)
    unknown = finetune - set(plan) - {modalities[m] for m in plan}
    if unknown:
        raise MmfuseError(
            f"--finetune {', '.join(sorted(unknown))}: fine-tuning applies to modalities with a "
            f"pretrained encoder; here: {', '.join(f'{m} ({p.backbone})' for m, p in plan.items()) or 'none'}"
        )
    return plan


_NOTIFIED: set[str] = set()


def _default(kind: str, verbose: bool, predicting: bool) -> str | None:
    """The first installed default network for ``kind`` (None: from scratch), with a one-line
    notice of what to install when the best one is missing."""
    candidates = default_pretrained(kind, predicting)
    usable = next((info for info in candidates if not info.missing()), None)
    if candidates and usable is not candidates[0] and verbose and kind not in _NOTIFIED:
        _NOTIFIED.add(kind)
        instead = f"the {usable.name}" if usable is not None else f"the from-scratch {DEFAULT_ENCODERS[kind]!r}"
        log(f"note: {kind} uses {instead} encoder; for the pretrained {candidates[0].name} encoder run: "
            f"{candidates[0].install_hint()}")
    return usable.name if usable is not None else None


def _finetune_names(finetune: str | list[str] | tuple[str, ...] | None) -> set[str]:
    if not finetune:
        return set()
    names = finetune.split(",") if isinstance(finetune, str) else list(finetune)
    return {n.strip() for n in names if n.strip()}


def feature_source(
    pretrained: Mapping[str, PretrainedInput],
    modalities: Mapping[str, str],
    device: str,
    use_cache: bool,
    cache_dir: str | None,
    model_dir: str | Path | None = None,
) -> FeatureSource:
    """The frozen networks of the frozen modalities and the feature cache, for a Preprocessor.

    Args:
        pretrained: Modality -> how it feeds a pretrained network (``plan_pretrained``).
        modalities: Modality -> kind (video clips are encoded ``CLIP_BATCH`` at a time).
        device: "auto", "cpu" or "cuda".
        use_cache: Read and write the feature cache (only frozen networks' features are cached).
        cache_dir: The cache folder (None: the default cache).
        model_dir: The model directory the preprocessing was loaded from, if any (see
            ``feature_cache``).

    Raises:
        MmfuseError: A network's packages are not installed (the message says what to install).
    """
    from mmfuse.encoders.backbones import FrozenExtractor
    from mmfuse.training.device import resolve_device

    for m, p in pretrained.items():
        BACKBONES[p.backbone].require(f"modality {m!r}")
    resolved = resolve_device(device)
    extractors = {
        m: FrozenExtractor(p.backbone, resolved, CLIP_BATCH if modalities[m] == "video" else 32)
        for m, p in pretrained.items()
        if p.frozen
    }
    cache = feature_cache(cache_dir, model_dir) if use_cache and extractors else None
    return FeatureSource(extractors, cache)


def feature_cache(cache_dir: str | None, model_dir: str | Path | None = None) -> FeatureCache:
    """The feature cache of a fit, or of a model loaded from ``model_dir``.

    A fit's cache (``cache_dir``, else ``$MMFUSE_CACHE_DIR`` or ``~/.cache/mmfuse``) is readied
    for writing before any work: a non-empty folder that mmfuse did not create stops the fit
    (MmfuseError); one that cannot be written prints one notice, and the fit runs without
    caching new features.

    A loaded model's config.json records the ``cache_dir`` of its fit, but that file may come
    from another machine or person, so a folder it names is never trusted for writing or
    deletion: it is used read-only (its entries are read; nothing there is created, touched,
    evicted or pruned). A model saved with the default cache (``cache_dir`` null) uses this
    machine's default cache, as a fit does. To fill or prune a named folder, fit with
    ``--cache-dir`` or run ``mmfuse cache prune --cache-dir``.
    """
    from mmfuse.data.cache import FeatureCache

    if model_dir is not None and cache_dir is not None:
        return FeatureCache(cache_dir, read_only=True)
    cache = FeatureCache(cache_dir)
    cache.prepare()
    return cache


def pretrained_record(pre: Preprocessor) -> dict[str, dict[str, object]]:
    """What config.json records per pretrained modality: network, its revision, mode and package
    versions."""
    return {
        m: {"encoder": p.backbone, "revision": BACKBONES[p.backbone].revision, "frozen": p.frozen,
            "packages": BACKBONES[p.backbone].versions()}
        for m, p in pre.pretrained.items()
    }
