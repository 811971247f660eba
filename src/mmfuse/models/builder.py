"""Builds a MultimodalModel from plain configuration: the one place where dimensions are wired."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from mmfuse.encoders import DEFAULT_ENCODERS, create_encoder
from mmfuse.errors import MmfuseError
from mmfuse.fusion import DEFAULT_FUSION, FUSIONS, LEVELS, create_fusion, fusion_level
from mmfuse.heads import MLPHead
from mmfuse.models.ensemble import EnsembleModel
from mmfuse.models.guard import MAX_WIDTH, ModalityGuard
from mmfuse.models.multimodal import MultimodalModel
from mmfuse.types import InputSpec


ENSEMBLE = "ensemble"
"""The level of a model that averages fitted members (``ModelConfig.members``)."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model's architecture (stored in config.json).

    Attributes:
        level: "early", "feature" or "late".
        fusion: Fusion operator name (must belong to ``level``).
        encoders: Modality -> encoder name.
        task: "classification" or "regression".
        num_outputs: Classes, or 1 for regression.
        dim: Embedding / fusion width.
        encoder_hparams: Modality -> extra encoder keyword arguments.
        fusion_hparams: Extra fusion keyword arguments.
        temperature: Classification: the combined logits are divided by it (temperature
            scaling, fitted on validation records after training; 1: none).
        embedding_means: Modality -> its mean encoder embedding over the training records
            where it is present (what an explanation puts in place of a hidden modality when
            the model never saw one missing); empty for a model saved before they were kept.
        trained_with_missing: Whether training ever hid a modality (modality dropout, or a
            modality missing in a training record); None: not recorded (an older model).
        guard: Whether the model holds a ``ModalityGuard`` (fitted after training; a modality
            far outside the training embeddings is treated as missing at prediction time).
        guard_inputs: Whether the guard also tests the modalities whose input is a feature
            vector (a pretrained network's frozen features, an embedding column) on that vector
            (False for a model saved before it did).
        auxiliary_heads: Feature level: whether each modality has an auxiliary head, trained
            beside the fused prediction so that every encoder learns to predict on its own
            (unused at prediction time).
        members: Level "ensemble" only: each member's ``ModelConfig`` as a dict.
        member_weights: Level "ensemble" only: each member's weight (they sum to 1).
    """

    level: str
    fusion: str
    encoders: dict[str, str]
    task: str
    num_outputs: int
    dim: int = 128
    encoder_hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    fusion_hparams: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    embedding_means: dict[str, list[float]] = field(default_factory=dict)
    trained_with_missing: bool | None = None
    guard: bool = False
    guard_inputs: bool = False
    auxiliary_heads: bool = False
    members: list[dict[str, Any]] = field(default_factory=list)
    member_weights: list[float] = field(default_factory=list)

    @property
    def guarded(self) -> bool:
        """Whether the model holds a guard; an ensemble, whether any member does."""
        return self.guard or any(m.get("guard", False) for m in self.members)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        return cls(**dict(d))


def resolve_fusion(level: str | None, fusion: str | None) -> tuple[str, str]:
    """Fills in the level from the fusion name or the fusion from the level, and checks both."""
    if fusion is not None and fusion not in FUSIONS:
        raise MmfuseError(f"unknown fusion {fusion!r}; choose one of: {', '.join(FUSIONS.names())}")
    if level is not None and level not in LEVELS:
        raise MmfuseError(f"unknown level {level!r}; choose one of: {', '.join(LEVELS)}")
    if fusion is None:
        level = level or "feature"
        return level, DEFAULT_FUSION[level]
    actual = fusion_level(fusion)
    if level is not None and level != actual:
        raise MmfuseError(f"fusion {fusion!r} is a {actual}-level operator, not {level}-level")
    return actual, fusion


def resolve_encoders(
    modalities: Mapping[str, str],
    level: str,
    overrides: Mapping[str, str] | None = None,
    pretrained: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Modality -> encoder name, the one place where it is settled: ``raw`` at the early
    level; else the packaged network the preprocessing prepared the modality for
    (``pretrained``: modality -> backbone), else the user's override, else the kind's default.

    ``overrides`` may be keyed by modality name or by kind (``{"image": "cnn"}``).
    """
    overrides = dict(overrides or {})
    known = set(modalities) | set(modalities.values())
    for key in overrides:
        if key not in known:
            raise MmfuseError(
                f"--encoder: {key!r} is neither a modality nor a kind in this data; "
                f"modalities: {', '.join(f'{m} ({k})' for m, k in modalities.items())}"
            )
    networks = dict(pretrained or {}) if level != "early" else {}
    out = {}
    for name, kind in modalities.items():
        if level == "early":
            out[name] = "raw"
        else:
            out[name] = (networks.get(name) or overrides.get(name) or overrides.get(kind)
                         or DEFAULT_ENCODERS[kind])
    return out


def build_model(config: ModelConfig, specs: Mapping[str, InputSpec]) -> MultimodalModel | EnsembleModel:
    """Creates encoders, fusion and heads, wiring each one's ``output_dim`` into the next.

    Raises:
        MmfuseError: An unknown encoder or a hyper-parameter the modules refuse (e.g. a width
            that the number of attention heads does not divide).
    """
    if config.dim < 1:
        raise MmfuseError(f"dim must be at least 1, got {config.dim}")
    if not config.temperature > 0:
        raise MmfuseError(f"the temperature must be positive, got {config.temperature}")
    try:
        model = _build_ensemble(config, specs) if config.level == ENSEMBLE else _build(config, specs)
    except ValueError as err:
        raise MmfuseError(f"cannot build the {config.fusion!r} model: {err}") from None
    model.temperature.fill_(config.temperature)
    return model


def _build_ensemble(config: ModelConfig, specs: Mapping[str, InputSpec]) -> EnsembleModel:
    members = [build_model(ModelConfig.from_dict(m), specs) for m in config.members]
    return EnsembleModel(members, config.member_weights, config.task)


def _build(config: ModelConfig, specs: Mapping[str, InputSpec]) -> MultimodalModel:
    encoders: dict[str, nn.Module] = {}
    for m in sorted(specs):
        hparams = dict(config.encoder_hparams.get(m, {}))
        if config.encoders[m] != "raw":
            hparams.setdefault("dim", config.dim)
        try:
            encoders[m] = create_encoder(specs[m].kind, config.encoders[m], specs[m], **hparams)
        except KeyError as err:
            raise MmfuseError(str(err.args[0])) from None
    dims = {m: int(e.output_dim) for m, e in encoders.items()}
    guard = None
    if config.guard and max(dims.values()) <= MAX_WIDTH:
        vectors = {m: s.shape[-1] for m, s in specs.items() if s.features or s.kind == "embedding"}
        guard = ModalityGuard(dims, vectors if config.guard_inputs else {})
    if config.level == "late":
        heads = {m: MLPHead(dims[m], config.num_outputs) for m in dims}
        outputs = {m: config.num_outputs for m in dims}
        fusion = create_fusion(config.fusion, outputs, task=config.task, **config.fusion_hparams)
        return MultimodalModel(encoders, fusion, None, heads, "late", guard)
    hparams = dict(config.fusion_hparams)
    if "dim" in inspect.signature(FUSIONS.get(config.fusion)).parameters:
        hparams.setdefault("dim", config.dim)
    fusion = create_fusion(config.fusion, dims, **hparams)
    head = MLPHead(int(fusion.output_dim), config.num_outputs)
    auxiliary = {m: nn.Linear(d, config.num_outputs) for m, d in dims.items()} if config.auxiliary_heads else None
    return MultimodalModel(encoders, fusion, head, None, config.level, guard, auxiliary)
