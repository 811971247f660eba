"""Indexing a collection with a retrieval model, searching it, and zero-shot classification.

An index directory records which model built it (path and weights fingerprint), which tower
embedded the collection and the modality kind, so ``search`` can refuse an index built by
another model and pick the right tower for a query.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfuse._progress import log
from mmfuse.data.readers import Table
from mmfuse.data.schema import infer_schema
from mmfuse.errors import MmfuseError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmfuse.data.preprocess import Encoded
    from mmfuse.estimators.retriever import MultimodalRetriever
    from mmfuse.retrieval.index import VectorIndex

ROW = "row"
VALUE = "value"
SOURCE = "source"
"""Metadata of every indexed row: ``source`` (the table it came from, as given to ``index``),
``row`` (its row there) and ``value`` (what was embedded); with the index's own ``row_id``,
unique across appends, they tell apart rows of several appended files. Input columns of these
names are not copied."""
UNKNOWN_SOURCE = "(not recorded)"
"""``source`` of rows indexed by an mmfuse that did not record it, shown after an append."""


def tower_for_column(est: MultimodalRetriever, table: Table, column: str) -> str:
    """The tower that embeds ``column``: the tower of that name, else the one of its kind."""
    pair = est.model_config_.pair
    if column in pair:
        return column
    if column not in table.df.columns:
        raise MmfuseError(f"{table.name}: column {column!r} is missing; columns: {', '.join(table.df.columns)}")
    kind = infer_schema(table.df, None, None, [column], table.base_dir, use_audio_tracks=False).kinds[column]
    matches = [m for m in pair if est.preprocessor_.modalities[m] == kind]
    if len(matches) != 1:
        kinds = ", ".join(f"{m} ({est.preprocessor_.modalities[m]})" for m in pair)
        raise MmfuseError(
            f"column {column!r} holds {kind}; this model's towers are {kinds}: name one of them"
        )
    return matches[0]


def build_index(
    est: MultimodalRetriever,
    table: Table,
    column: str,
    out_dir: str | Path | None,
    approximate: str | None,
    append: bool,
    embed: Callable[[Table, str, str], tuple[np.ndarray, Encoded]] | None = None,
) -> VectorIndex:
    """Embeds ``column`` in batches and indexes it (or appends it to the index in ``out_dir``);
    ``embed`` computes the vectors as ``est.encode_table`` would (e.g. on a Ray cluster)."""
    from mmfuse.retrieval.index import VectorIndex

    tower = tower_for_column(est, table, column)
    table = _unique_values(table, column, est.verbose)
    vectors, enc = (embed or est.encode_table)(table, column, tower)
    if len(vectors) == 0:
        raise MmfuseError(f"{table.name}: no row of column {column!r} could be embedded")
    meta = _metadata(table, column, enc.rows)
    info = {
        "model": str(Path(est.model_dir_).resolve()) if getattr(est, "model_dir_", None) else None,
        "model_fingerprint": getattr(est, "fingerprint_", None),
        "tower": tower,
        "kind": est.preprocessor_.modalities[tower],
        "column": column,
        "base_dir": str(table.base_dir.resolve()),
    }
    if append:
        if out_dir is None or not (Path(out_dir) / "index.json").exists():
            raise MmfuseError(f"--append needs an existing index in {out_dir}")
        index = VectorIndex.load(out_dir)
        check_compatible(est, index)
        if index.info.get("tower") != tower:
            raise MmfuseError(
                f"the index in {out_dir} holds {index.info.get('tower')!r} vectors; column "
                f"{column!r} is embedded by the {tower!r} tower: write it to another index"
            )
        _record_sources(index)
        index.add(vectors, meta)
    else:
        index = VectorIndex.build(vectors, meta, info, approximate)
    if out_dir is not None:
        index.save(out_dir)
    if est.verbose:
        recall = index.parameters.get("recall_at_10")
        note = f"; measured recall@10 vs exact search {recall:.3f}" if recall is not None else ""
        if "fallback_reason" in index.parameters:
            note = f" instead of {index.parameters['requested_kind']}: too few rows to measure its recall"
        log(f"indexed {len(vectors)} {tower} vectors ({index.kind}, {len(index)} in total){note}")
    return index


def _unique_values(table: Table, column: str, verbose: bool) -> Table:
    """The collection counts each item once: rows repeating a value (one image, five captions)
    are indexed through their first row."""
    if column not in table.df.columns:
        raise MmfuseError(f"{table.name}: column {column!r} is missing; columns: {', '.join(table.df.columns)}")
    repeated = table.df[column].astype(str).duplicated() & table.df[column].notna()
    if not repeated.any():
        return table
    if verbose:
        log(f"{table.name}: {int(repeated.sum())} row(s) repeat a {column!r} value; each value is indexed once")
    unique = Table(table.df[~repeated], table.base_dir, table.name)
    unique.bad_lines = table.bad_lines
    return unique


def _metadata(table: Table, column: str, rows: np.ndarray) -> pd.DataFrame:
    df = table.df.loc[rows]
    meta = pd.DataFrame({
        SOURCE: np.full(len(rows), table.name, dtype=object),
        ROW: rows.astype(np.int64),
        VALUE: df[column].astype(str).to_numpy(),
    })
    for col in df.columns:
        if col not in meta.columns:
            meta[col] = df[col].astype(str).to_numpy() if df[col].dtype == object else df[col].to_numpy()
    return meta


def _record_sources(index: VectorIndex) -> None:
    """Gives an index written before sources were recorded a ``source`` column, so rows of
    the file appended now can be told apart from them."""
    if SOURCE not in index.metadata.columns:
        index.metadata.insert(1, SOURCE, UNKNOWN_SOURCE)


def check_compatible(est: MultimodalRetriever, index: VectorIndex) -> None:
    """Refuses an index built by another model or of another width."""
    fingerprint = index.info.get("model_fingerprint")
    mine = getattr(est, "fingerprint_", None)
    if fingerprint and fingerprint != mine:  # an unsaved model (no fingerprint) is another model
        raise MmfuseError(
            f"the index was built by another model ({index.info.get('model')}); "
            "rebuild it with `mmfuse index` for this model"
        )
    tower = index.info.get("tower")
    if tower is not None and tower not in est.model_config_.pair:
        raise MmfuseError(
            f"the index holds vectors of a {tower!r} tower; this model's towers are "
            f"{', '.join(est.model_config_.pair)}: rebuild it with `mmfuse index` for this model"
        )
    if index.dim != est.model_config_.embed_dim:
        raise MmfuseError(
            f"the index holds {index.dim}-d vectors but this model embeds {est.model_config_.embed_dim}-d"
        )


def search_index(
    est: MultimodalRetriever, index: Any, query: str, k: int, modality: str | None
) -> pd.DataFrame:
    """Ranked hits (rank, score, row, value and the original columns) of one query."""
    from mmfuse.retrieval.index import VectorIndex

    if not isinstance(index, VectorIndex):
        index = VectorIndex.load(index)
    check_compatible(est, index)
    vector = est.embed_query(query, index.info.get("tower", est.model_config_.pair[0]), modality)
    return index.search(vector, k).hits(0)


def zero_shot(est: MultimodalRetriever, table: Table, labels: list[str], prompt: str) -> pd.DataFrame:
    """Per record: the best label and a softmax score per label (scale * cosine)."""
    labels = [lab.strip() for lab in labels if lab.strip()]
    if len(labels) < 2:
        raise MmfuseError(f"--labels needs at least two labels, e.g. --labels cat,dog; got {labels}")
    dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dupes:
        raise MmfuseError(f"--labels names {', '.join(map(repr, dupes))} more than once; give each label once")
    if "{}" not in prompt:
        raise MmfuseError(f"the prompt must contain {{}} where the label goes; got {prompt!r}")
    try:
        prompt.format("label")
    except (IndexError, KeyError, ValueError):
        raise MmfuseError(f"the prompt must contain {{}} where the label goes and no other braces "
                          f"(write {{{{ or }}}} for a literal brace); got {prompt!r}") from None
    kinds = {m: est.preprocessor_.modalities[m] for m in est.model_config_.pair}
    text = [m for m, k in kinds.items() if k == "text"]
    if not text:
        raise MmfuseError(f"zero-shot labels need a text tower; this model pairs {', '.join(kinds)}")
    other = next((m for m in kinds if m != text[0]), text[0])
    prompts = Table(pd.DataFrame({text[0]: [prompt.format(lab) for lab in labels]}), Path.cwd(), "labels")
    label_vectors, _ = est.encode_table(prompts, text[0])
    column = other if other in table.df.columns else None
    if column is None:
        raise MmfuseError(f"{table.name}: zero-shot needs the column {other!r}; columns: {', '.join(table.df.columns)}")
    vectors, enc = est.encode_table(table, column, other)
    scale = float(est.model_.logit_scale().detach())
    logits = scale * vectors @ label_vectors.T  # (N, L)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    out = pd.DataFrame({ROW: enc.rows, "prediction": np.asarray(labels, dtype=object)[probs.argmax(1)]})
    for i, lab in enumerate(labels):
        out[f"score_{lab}"] = probs[:, i]
    return out
