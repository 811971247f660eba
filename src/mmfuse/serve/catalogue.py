"""The served directories: each model and index loaded once, named, and described for clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmfuse.errors import MmfuseError
from mmfuse.serve.errors import RequestError

ACCEPTS = {"image": "file", "audio": "file", "video": "file", "text": "text", "numeric": "number",
           "categorical": "choice", "embedding": "text"}  # fmt: skip
"""How a client gives a value of each column kind."""
MEDIA_KINDS = ("image", "audio", "video")


@dataclass(frozen=True)
class InputField:
    """One input column of a model, as a client fills it."""

    name: str
    kind: str
    choices: tuple[str, ...] = ()

    @property
    def accepts(self) -> str:
        return ACCEPTS.get(self.kind, "text")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "accepts": self.accepts}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        return out


@dataclass
class ServedModel:
    """A loaded model directory.

    Attributes:
        name: Its name in the API (the directory's name, made unique).
        directory: The model directory.
        estimator: The loaded estimator (classifier, regressor or retriever).
        indexes: Names of the served indexes this (retrieval) model searches.
    """

    name: str
    directory: Path
    estimator: Any
    indexes: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        return str(self.estimator.task_)

    @property
    def inputs(self) -> list[InputField]:
        """The model's feature columns (a retrieval model: its two towers' columns; a
        recommender: none, it is asked for a user)."""
        if self.task == "recommendation":
            return []
        schema = self.estimator.schema_
        tabular = self.estimator.preprocessor_.tabular
        vocab = dict(zip(tabular.categorical, tabular.vocabularies_)) if tabular is not None else {}
        columns = schema.kinds
        if self.task == "retrieval":
            columns = {c: k for c, k in columns.items() if c in self.estimator.model_config_.pair}
        return [InputField(c, k, tuple(vocab.get(c, ()))) for c, k in columns.items()]

    @property
    def classes(self) -> list[str] | None:
        if self.task != "classification":
            return None
        return [str(c) for c in self.estimator.classes_]

    @property
    def modalities(self) -> dict[str, str]:
        if self.task == "recommendation":
            pipeline = self.estimator.content_pipeline_
            return dict(pipeline.modalities) if pipeline is not None else {}
        return dict(self.estimator.preprocessor_.modalities)

    def describe(self) -> dict[str, Any]:
        out = {
            "name": self.name, "task": self.task,
            "target": None if self.task == "recommendation" else self.estimator.schema_.target,
            "classes": self.classes, "inputs": [f.describe() for f in self.inputs],
            "modalities": self.modalities, "indexes": list(self.indexes),
        }  # fmt: skip
        if self.task == "recommendation":
            est = self.estimator
            out["users"] = len(est.users_)
            out["items"] = len(est.items_)
            out["example_users"] = est.users_.ids[:5]
        return out


@dataclass
class ServedIndex:
    """A loaded index directory and the retrieval model that embeds its queries."""

    name: str
    directory: Path
    index: Any  # VectorIndex
    model: ServedModel

    @property
    def tower(self) -> str:
        return str(self.index.info.get("tower"))

    @property
    def kind(self) -> str:
        return str(self.index.info.get("kind"))

    @property
    def query_kinds(self) -> list[str]:
        """The kinds of query the model's towers can embed."""
        mods = self.model.estimator.preprocessor_.modalities
        return sorted({mods[m] for m in self.model.estimator.model_config_.pair})

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "model": self.model.name, "column": self.index.info.get("column"),
            "kind": self.kind, "size": len(self.index), "query_kinds": self.query_kinds,
        }  # fmt: skip


@dataclass
class Catalogue:
    """Everything one server serves, by name."""

    models: dict[str, ServedModel]
    indexes: dict[str, ServedIndex]

    def model(self, name: str | None, tasks: tuple[str, ...] = ("classification", "regression")) -> ServedModel:
        """The model called ``name``; None: the only model of one of ``tasks``."""
        if name:
            if name not in self.models:
                raise RequestError(404, f"no model called {name!r}; served: {', '.join(self.models) or 'none'}")
            return self.models[name]
        fitting = [m for m in self.models.values() if m.task in tasks]
        if len(fitting) != 1:
            names = ", ".join(m.name for m in fitting) or "none"
            what = "recommendation models" if tasks == ("recommendation",) else "classifiers and regressors"
            raise RequestError(422, f"name the model (field 'model'); the served {what} are: {names}")
        return fitting[0]

    def index(self, name: str | None) -> ServedIndex:
        """The index called ``name``; None: the only index."""
        if name:
            if name not in self.indexes:
                raise RequestError(404, f"no index called {name!r}; served: {', '.join(self.indexes) or 'none'}")
            return self.indexes[name]
        if len(self.indexes) != 1:
            raise RequestError(422, f"name the index (field 'index'); served: {', '.join(self.indexes) or 'none'}")
        return next(iter(self.indexes.values()))


def load_catalogue(
    model_dirs: list[str], index_dirs: list[str], num_threads: int | None = None, device: str = "cpu"
) -> Catalogue:
    """Loads every model and index directory once (an index without its model loads the model
    that built it, as recorded in the index).

    Raises:
        MmfuseError: A directory that is not a model or an index, or an index whose model
            cannot be found.
    """
    from mmfuse.retrieval.index import VectorIndex

    models: dict[str, ServedModel] = {}
    for directory in model_dirs:
        _add_model(models, Path(directory), num_threads, device)
    indexes: dict[str, ServedIndex] = {}
    for directory in index_dirs:
        folder = Path(directory)
        if (folder / "config.json").is_file() and not (folder / "index.json").is_file():
            raise MmfuseError(f"{folder} is a model directory, not an index: pass it without --index")
        index = VectorIndex.load(folder, num_threads)
        model = _model_of(index, folder, models, num_threads, device)
        name = _unique(folder, indexes)
        indexes[name] = ServedIndex(name, folder, index, model)
        model.indexes.append(name)
    if not models:
        raise MmfuseError("nothing to serve: pass at least one model or --index directory")
    return Catalogue(models, indexes)


def _add_model(models: dict[str, ServedModel], folder: Path, num_threads: int | None, device: str) -> ServedModel:
    from mmfuse.estimators.io import load

    if (folder / "index.json").is_file() and not (folder / "config.json").is_file():
        raise MmfuseError(f"{folder} is an index directory: pass it with --index {folder}")
    estimator = load(folder, on_bad_record="skip", verbose=False, num_threads=num_threads,
                     device=device, missing_files="error", base_dir=None)
    served = ServedModel(_unique(folder, models), folder, estimator)
    models[served.name] = served
    _load_networks(estimator)
    return served


def _load_networks(estimator: Any) -> None:
    """Loads the model's frozen pretrained networks now, so the first request does not wait
    for them."""
    pipelines = [getattr(estimator, name, None) for name in ("content_pipeline_", "attribute_pipeline_")]
    preprocessors = [p.preprocessor for p in pipelines if p is not None]
    if getattr(estimator, "preprocessor_", None) is not None:
        preprocessors.append(estimator.preprocessor_)
    for pre in preprocessors:
        for extractor in pre.extractors.values():
            if hasattr(extractor, "network"):
                extractor.network()


def _model_of(
    index: Any, folder: Path, models: dict[str, ServedModel], num_threads: int | None, device: str
) -> ServedModel:
    """The served retrieval model that built ``index`` (loaded now when it is not served yet)."""
    from mmfuse.estimators.retrieval_index import check_compatible

    recorded = index.info.get("model")
    for model in models.values():
        if model.task == "retrieval" and (
            index.info.get("model_fingerprint") == getattr(model.estimator, "fingerprint_", None)
            or (recorded and Path(recorded).resolve() == model.directory.resolve())
        ):
            check_compatible(model.estimator, index)
            return model
    if not recorded or not Path(recorded).is_dir():
        raise MmfuseError(
            f"{folder}: the model that built this index ({recorded or 'not recorded'}) is not "
            "there; pass its model directory too: mmfuse serve MODEL_DIR --index INDEX_DIR"
        )
    model = _add_model(models, Path(recorded), num_threads, device)
    check_compatible(model.estimator, index)
    return model


def _unique(folder: Path, taken: dict[str, Any]) -> str:
    base = folder.resolve().name or "model"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name
