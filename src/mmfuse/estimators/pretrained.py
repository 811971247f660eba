"""Which modalities use pretrained networks, frozen or fine-tuned, and wiring their extractors.

``plan_pretrained`` turns an estimator's parameters (``encoders``, ``pretrained``, ``finetune``)
into ``{modality: PretrainedInput}`` for the Preprocessor: an explicit ``--encoder`` wins;
otherwise kinds in ``DEFAULT_PRETRAINED`` use their pretrained network where its packages are
installed, and fall back to the from-scratch encoder with a one-line notice where not.
``attach_extractors`` gives the Preprocessor the frozen networks and the feature cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mmfuse._progress import log
from mmfuse.data.preprocess import PretrainedInput, Preprocessor
from mmfuse.data.schema import parse_pairs
from mmfuse.encoders import DEFAULT_ENCODERS
from mmfuse.errors import MmfuseError
from mmfuse.models.builder import resolve_fusion
from mmfuse.pretrained import BACKBONES, backbone_of, default_pretrained

if TYPE_CHECKING:
    from mmfuse.data.cache import FeatureCache
    from mmfuse.estimators.base import MultimodalEstimator

CLIP_BATCH = 4
"""Clips per forward pass when a frozen image network encodes video frames."""


def plan_pretrained(est: MultimodalEstimator, modalities: Mapping[str, str]) -> dict[str, PretrainedInput]:
    """Modality -> how it feeds a pretrained network (empty at the early level)."""
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
            name = _default(kind, est.verbose)
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


def _default(kind: str, verbose: bool) -> str | None:
    info = default_pretrained(kind)
    if info is None:
        return None
    missing = info.missing()
    if not missing:
        return info.name
    if verbose and kind not in _NOTIFIED:
        _NOTIFIED.add(kind)
        log(f"note: {kind} uses the from-scratch {DEFAULT_ENCODERS[kind]!r} encoder; for the "
            f"pretrained {info.name} encoder run: {info.install_hint()}")
    return None


def _finetune_names(finetune: str | list[str] | tuple[str, ...] | None) -> set[str]:
    if not finetune:
        return set()
    names = finetune.split(",") if isinstance(finetune, str) else list(finetune)
    return {n.strip() for n in names if n.strip()}


def attach_extractors(
    pre: Preprocessor, est: MultimodalEstimator, model_dir: str | Path | None = None
) -> None:
    """Gives ``pre`` a frozen network per frozen modality and the feature cache.

    Args:
        pre: The preprocessor.
        est: Its estimator (``device``, ``use_cache``, ``cache_dir``).
        model_dir: The model directory ``est`` was loaded from, if any (see ``feature_cache``).
    """
    from mmfuse.encoders.backbones import FrozenExtractor
    from mmfuse.training.device import resolve_device

    for m, p in pre.pretrained.items():
        BACKBONES[p.backbone].require(f"modality {m!r}")
    device = resolve_device(est.device)
    pre.extractors = {
        m: FrozenExtractor(p.backbone, device, CLIP_BATCH if pre.modalities[m] == "video" else 32)
        for m, p in pre.pretrained.items()
        if p.frozen
    }
    if est.use_cache and pre.extractors:  # only frozen networks' features are cached
        pre.cache = feature_cache(est.cache_dir, model_dir)
    else:
        pre.cache = None


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
