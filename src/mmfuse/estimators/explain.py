"""Explaining a fitted model: modality Shapley values, ablation, fusion weights, plots.

``explain`` runs the pure functions of ``mmfuse.evaluation.contribution`` on a table and
optionally writes ``contributions.json``, ``contributions.png`` and, for one record,
``samples/row_<ROW>_<modality>.png`` and ``samples/row_<ROW>.json``.

A modality fed to a pretrained network is occluded in its raw cell (the picture, the words,
the sound), re-encoded by the network for each occluded copy, so its map shows image regions,
words and time segments rather than feature dimensions.

How a modality is hidden for its Shapley value and ablation (``explanation_baseline``): an
early- or feature-level model trained without ever missing a modality would be asked about
inputs it never saw if the modality were masked, so its embedding is replaced by its training
mean instead; a model trained with missing modalities, or a decision-level one, is masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfuse._io import write_json
from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded
from mmfuse.data.readers import read_table
from mmfuse.errors import MmfuseError

if TYPE_CHECKING:
    from mmfuse.data.preprocess import Preprocessor
    from mmfuse.data.readers import Table
    from mmfuse.estimators.facade import DataLike
    from mmfuse.estimators.pipeline import Pipeline
    from mmfuse.models.builder import ModelConfig
    from mmfuse.models.fitted import FittedModel
    from mmfuse.models.multimodal import MultimodalModel
    from mmfuse.evaluation.contribution import ShapleyResult
    from mmfuse.evaluation.occlusion import RawInput
    from mmfuse.types import InputSpec


def explain(
    fitted: FittedModel,
    pipeline: Pipeline,
    data: DataLike,
    out_dir: Path | None = None,
    sample: int | None = None,
    max_records: int | None = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-modality contributions of a fitted model on ``data``.

    Args:
        fitted: A fitted classifier or regressor (``estimator.fitted_model``).
        pipeline: Its fitted pipeline, with the options to read ``data`` by
            (``estimator.pipeline_``).
        data: Records (file path, DataFrame or Table); with the target column the ablation
            deltas are computed too.
        out_dir: Folder for the JSON and PNG files; None writes nothing.
        sample: An original data-row number to explain at the input level (occlusion maps;
            modalities fed to a pretrained network are occluded in the raw cell).
        max_records: Explain a seeded random subset of at most this many records (the
            ``sample`` record is always kept); None: all.
        seed: Seed of the subset and of the bootstrap intervals.

    Returns:
        {"summary": dict, "values": DataFrame of per-record Shapley values (index: row,
        columns: modalities), "sample": dict or None, "encoded": the explained records}.
    """
    from mmfuse.evaluation.contribution import fusion_weights, modality_shapley, plot_contributions

    if max_records is not None and max_records < 1:
        raise MmfuseError(f"max_records must be >= 1 or None, got {max_records}")
    table = read_table(data)
    target = fitted.preprocessor.schema.target
    enc = pipeline.prepare(table, with_target=target in table.df.columns)
    if len(enc) == 0:
        raise MmfuseError("no records to explain")
    position = _position(enc, sample)
    enc, position = _subset(enc, max_records, position, seed)
    model, task = fitted.model, fitted.task
    baseline = explanation_baseline(fitted.config, model)
    log(f"note: {baseline.note}", pipeline.verbose)
    result = modality_shapley(model, enc, task, seed=seed, baseline=baseline.embeddings)
    summary = _summary(result, len(enc))
    summary["baseline"], summary["baseline_note"] = baseline.kind, baseline.note
    if enc.targets is not None:
        summary["ablation"] = _ablation(fitted, enc, baseline.embeddings)
    summary["fusion_weights"] = fusion_weights(model, enc)
    values = pd.DataFrame(result.values, index=pd.Index(enc.rows, name="row"),
                          columns=result.modalities)  # fmt: skip
    detail = None if position is None else _sample(fitted, pipeline.verbose, table, enc, position, result)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        per_record = [
            {"row": int(r), "base": float(b), "full": float(f),
             "values": {m: float(v) for m, v in zip(result.modalities, phi)}}
            for r, b, f, phi in zip(enc.rows, result.base, result.full, result.values)
        ]  # fmt: skip
        write_json(out_dir / "contributions.json", {**summary, "records": per_record})
        plot_contributions(result, out_dir / "contributions.png", _title(fitted, len(enc)))
        if detail is not None:
            _write_sample(fitted, detail, out_dir / "samples")
    return {"summary": summary, "values": values, "sample": detail, "encoded": enc}


@dataclass(frozen=True)
class ExplanationBaseline:
    """How an explanation hides a modality.

    Attributes:
        kind: "training_mean" (the modality's embedding replaced by its mean over the training
            records, the mask kept) or "mask" (the mask entry set to False).
        note: Why, in one sentence (printed, and kept in the summary).
        embeddings: "training_mean": modality -> (D_m,) mean embedding; "mask": None.
    """

    kind: str
    note: str
    embeddings: dict[str, np.ndarray] | None = None


def explanation_baseline(config: ModelConfig, model: MultimodalModel) -> ExplanationBaseline:
    """The baseline that stays valid for this model: its training-mean embeddings when it is an
    early- or feature-level model trained without missing modalities, else the mask.

    Raises:
        MmfuseError: Recorded means that do not fit the model (another modality set or width).
    """
    if config.level == "ensemble":
        return ExplanationBaseline("mask", "this ensemble's members were trained with missing modalities "
                                   "or predict from each modality on its own, so a hidden modality is "
                                   "masked")  # fmt: skip
    if config.level == "late":
        return ExplanationBaseline("mask", "this decision-level model predicts from each modality "
                                   "on its own and combines what is present, so a hidden modality "
                                   "is masked")  # fmt: skip
    if config.trained_with_missing:
        return ExplanationBaseline("mask", "this model was trained with missing modalities "
                                   "(modality dropout or missing values), so a hidden modality is "
                                   "masked")  # fmt: skip
    if config.trained_with_missing is None or not config.embedding_means:
        return ExplanationBaseline("mask", "this model records no training-mean embeddings (saved "
                                   "by an older mmfuse), so a hidden modality is masked, which the "
                                   "model may never have seen in training; fit it again for a "
                                   "baseline that stays valid")  # fmt: skip
    return ExplanationBaseline("training_mean", "this model was trained without missing "
                               "modalities, so a hidden modality is replaced by its training-mean "
                               "embedding (not masked)", _means(config, model))  # fmt: skip


def _means(config: ModelConfig, model: MultimodalModel) -> dict[str, np.ndarray]:
    """The recorded mean embeddings as arrays, checked against the model's encoders."""
    means = {m: np.asarray(v, dtype=np.float32) for m, v in config.embedding_means.items()}
    widths = {m: int(model.encoders[m].output_dim) for m in model.modalities}
    if sorted(means) != sorted(widths) or any(means[m].shape != (w,) for m, w in widths.items()):
        shapes = ", ".join(f"{m}: {v.shape}" for m, v in means.items())
        raise MmfuseError(f"the model's embedding_means ({shapes or 'none'}) do not fit its "
                          f"encoders ({', '.join(f'{m}: ({w},)' for m, w in widths.items())})")
    return means


def _position(enc: Encoded, sample: int | None) -> int | None:
    if sample is None:
        return None
    hits = np.flatnonzero(enc.rows == sample)
    if len(hits) == 0:
        rows = enc.rows
        raise MmfuseError(
            f"row {sample} is not among the {len(rows)} readable records "
            f"(rows {int(rows.min())}..{int(rows.max())}; bad records are skipped)"
        )
    return int(hits[0])


def _subset(
    enc: Encoded, max_records: int | None, position: int | None, seed: int
) -> tuple[Encoded, int | None]:
    """At most ``max_records`` records (seeded, in order), always keeping ``position``."""
    from mmfuse.estimators.pipeline import take_records

    if max_records is None or len(enc) <= max_records:
        return enc, position
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(enc), dtype=bool)
    keep[rng.choice(len(enc), size=max_records, replace=False)] = True
    if position is not None and not keep[position]:
        keep[np.flatnonzero(keep)[0]] = False
        keep[position] = True
    new_position = None if position is None else int(keep[:position].sum())
    return take_records(enc, keep), new_position


def _summary(result: ShapleyResult, n: int) -> dict[str, Any]:
    def per_modality(a: np.ndarray) -> dict[str, Any]:
        return {m: np.round(v, 6).tolist() for m, v in zip(result.modalities, a)}

    return {
        "task": result.task,
        "units": result.units,
        "records": n,
        "modalities": list(result.modalities),
        "base_value": float(result.base.mean()),
        "full_value": float(result.full.mean()),
        "mean_abs": per_modality(result.mean_abs),
        "mean_abs_ci95": per_modality(result.mean_abs_ci),
        "mean": per_modality(result.mean),
        "mean_ci95": per_modality(result.mean_ci),
        "ablation": None,
    }


def _ablation(
    fitted: FittedModel, enc: Encoded, baseline: dict[str, np.ndarray] | None
) -> dict[str, Any]:
    from mmfuse.evaluation.contribution import ablation_deltas
    from mmfuse.evaluation.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC, task_metrics

    task = fitted.task
    name = PRIMARY_METRIC[task]

    def metric(y: np.ndarray, p: np.ndarray) -> float:
        return task_metrics(task, fitted.decode(y), fitted.decode(p))[name]

    result = ablation_deltas(fitted.model, enc, task, metric, HIGHER_IS_BETTER[name],
                             baseline=baseline)  # fmt: skip
    return {"metric": name, "full": result.full, "without": result.without, "deltas": result.deltas}


def _score_label(fitted: FittedModel, target_class: int | None) -> str:
    pre = fitted.preprocessor
    if target_class is None:
        return f"prediction of {pre.schema.target} (standardised)"
    return f"P({pre.fitted_target.classes[target_class]})"


def _sample(
    fitted: FittedModel, verbose: bool, table: Table, enc: Encoded, i: int, result: ShapleyResult
) -> dict[str, Any]:
    """Occlusion maps and Shapley values of the record at position ``i``.

    ``inputs`` holds what each map is drawn over: the model's input, or the decoded cell of a
    modality fed to a pretrained network (listed with its parts under ``raw``).
    """
    from mmfuse.evaluation.contribution import occlusion_attribution

    model, task, pre = fitted.model, fitted.task, fitted.preprocessor
    inputs = {m: enc.inputs[m][i] for m in model.modalities}
    mask = {m: bool(enc.mask[m][i]) for m in model.modalities}
    target_class = None
    if task == "classification":
        target_class = int(fitted.outputs(_one(enc, i)).argmax(1)[0])
    specs = pre.input_specs()
    raw = _raw_inputs(pre, table, int(enc.rows[i]), mask)
    if raw:
        networks = ", ".join(f"{m} ({pre.pretrained[m].backbone})" for m in raw)
        log(f"row {int(enc.rows[i])}: re-encoding occluded copies of {networks}", verbose)
    maps = occlusion_attribution(model, inputs, mask, specs, task, target_class, raw=raw)
    return {
        "row": int(enc.rows[i]),
        "present": mask,
        "explained": _score_label(fitted, target_class),
        "value": float(result.full[i]),
        "base_value": float(result.base[i]),
        "shapley": {m: float(v) for m, v in zip(result.modalities, result.values[i])},
        "occlusion": maps,
        "inputs": {**inputs, **{m: r.decoded for m, r in raw.items()}},
        "raw": {m: _raw_detail(pre.pretrained[m].backbone, r, maps[m])
                for m, r in raw.items()},  # fmt: skip
    }


def _raw_inputs(
    pre: Preprocessor, table: Table, row: int, mask: dict[str, bool]
) -> dict[str, RawInput]:
    """The cell of data row ``row`` of each present modality fed to a pretrained network,
    decoded as its network's preparation does, with that network when it is frozen."""
    from mmfuse.data.cells import checked_cell
    from mmfuse.data.preparations import get_preparation
    from mmfuse.data.schema import AUDIO_TRACK_SUFFIX
    from mmfuse.errors import DecodeError
    from mmfuse.evaluation.occlusion import RawInput

    tracks = pre.track_modalities()
    raw: dict[str, RawInput] = {}
    for m, p in pre.pretrained.items():
        if not mask.get(m):
            continue
        column = m[: -len(AUDIO_TRACK_SUFFIX)] if m in tracks else m
        kind = "video" if m in tracks else pre.modalities[m]
        prep = get_preparation(p.preparation)
        try:
            cell = table.df.loc[row, column]
            source = checked_cell(cell, kind, table.base_dir, "error", m in tracks)
            decoded = prep.decode(source, source if isinstance(source, Path) else None)
        except DecodeError as err:
            raise MmfuseError(f"{table.name}, row {row}, column {column!r}: {err}") from None
        if p.frozen and m not in pre.extractors:
            raise MmfuseError(f"no feature extractor for the frozen {kind} modality {m!r}")
        raw[m] = RawInput(decoded, prep, pre.extractors[m] if p.frozen else None)
    return raw


def _raw_detail(backbone: str, raw: RawInput, attribution: np.ndarray) -> dict[str, Any]:
    """What the JSON and the plot say about a raw cell's map: its kind, how its parts were
    hidden, a label per part of a one-dimensional map, and the audio sample rate."""
    from mmfuse.evaluation.occlusion import hidden_parts, image_cells, raw_parts

    encoded = f"re-encoded by {backbone}" if raw.network is not None else (
        f"prepared for the fine-tuned {backbone}")  # fmt: skip
    detail: dict[str, Any] = {
        "kind": raw.preparation.kind,
        "hidden": f"{hidden_parts(raw, attribution.shape)}, {encoded}",
    }
    if attribution.ndim == 1:
        detail["parts"] = raw_parts(raw, len(attribution))
    else:  # an image map is constant on cells; the JSON keeps one value per cell
        detail["row_edges"], detail["col_edges"] = image_cells(*attribution.shape)
    if raw.preparation.kind == "audio":
        detail["sample_rate"] = getattr(raw.preparation, "sample_rate", None)
    return detail


def _one(enc: Encoded, i: int) -> Encoded:
    from mmfuse.estimators.pipeline import take_records

    keep = np.zeros(len(enc), dtype=bool)
    keep[i] = True
    return take_records(enc, keep)


def _write_sample(fitted: FittedModel, detail: dict[str, Any], folder: Path) -> None:
    pre, row = fitted.preprocessor, detail["row"]
    specs = pre.input_specs()
    files = {}
    for m, attribution in detail["occlusion"].items():
        path = folder / f"row_{row}_{m}.png"
        kind = "" if specs[m].kind == m else f" ({specs[m].kind})"
        title = (
            f"Row {row}, {m}{kind}: {detail['explained']} = {detail['value']:.3f} with every "
            f"modality present\nShapley value of {m} (whole modality removed): "
            f"{detail['shapley'][m]:+.3f}; below: parts hidden one at a time"
        )
        if m in detail["raw"]:
            _plot_raw(m, detail, path, title)
        else:
            _plot_input(pre, m, specs, detail, path, title)
        files[m] = path.name
    record = {k: v for k, v in detail.items() if k not in ("occlusion", "inputs")}
    record["occlusion"] = {m: np.round(_cells(a, detail["raw"].get(m, {})), 6).tolist()
                           for m, a in detail["occlusion"].items()}  # fmt: skip
    record["plots"] = files
    write_json(folder / f"row_{row}.json", record)


def _cells(attribution: np.ndarray, raw: dict[str, Any]) -> np.ndarray:
    """One value per cell of a raw image map (its cell edges are in ``raw``); other maps whole."""
    if "row_edges" not in raw:
        return attribution
    return attribution[np.ix_(raw["row_edges"][:-1], raw["col_edges"][:-1])]


def _plot_input(
    pre: Preprocessor, m: str, specs: dict[str, InputSpec], detail: dict[str, Any], path: Path,
    title: str,
) -> None:  # fmt: skip
    """The map of a modality occluded in the model's input."""
    from mmfuse.evaluation.contribution import plot_sample

    tokens = pre.vocabularies[m].tokens if m in pre.vocabularies else None  # word vocabularies only
    names = None
    if specs[m].kind == "tabular":
        names = list(pre.tabular.numeric) + list(pre.tabular.categorical)
    plot_sample(m, specs[m], detail["inputs"][m], detail["occlusion"][m], path, detail["explained"],
                title, tokens, names)  # fmt: skip


def _plot_raw(m: str, detail: dict[str, Any], path: Path, title: str) -> None:
    """The map of a modality occluded in its raw cell."""
    import textwrap

    from mmfuse.evaluation.contribution_plots import plot_raw_sample

    raw = detail["raw"][m]
    hidden = textwrap.fill(f"({raw['hidden']})", 100)
    plot_raw_sample(raw["kind"], detail["inputs"][m], detail["occlusion"][m], path,
                    detail["explained"], f"{title}\n{hidden}", raw.get("parts"),
                    raw.get("sample_rate"))  # fmt: skip


def _title(fitted: FittedModel, n: int) -> str:
    cfg = fitted.config
    return f"Modality contributions: {cfg.level}-level {cfg.fusion} model, {n} records"
