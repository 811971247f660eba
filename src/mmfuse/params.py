"""Every user-facing parameter, declared once.

Each parameter is a field of a frozen dataclass: its name is the Python keyword and the key in
``config.json``, its default is the one default, and its metadata holds the help text and how
it is spelled on the command line. The estimators take their keyword arguments from these
classes (``takes_params``), and the CLI generates its flags from them (``mmfuse.cli.flags``),
so the two can never disagree.

Groups are plain dataclasses combined by inheritance (listed last-first, so that the most
specific group's parameters come first in signatures); a class that needs another default for a
parameter (the retriever trains longer, on bigger batches) restates it with ``retuned``, which
keeps the help text of the original declaration.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Cli:
    """How a parameter appears on the command line.

    Attributes:
        help: One line for ``--help`` and the docstring.
        flag: The option (default: ``--`` + the name with dashes).
        choices: Allowed values, checked by the parser.
        metavar: Placeholder in ``--help``.
        off: For a boolean that defaults to True: the option that sets it False
            (``--no-pretrained``, ``--quiet``); the positive option is then not offered.
        kind: The argument's type on the command line (default: the default's type).
    """

    help: str
    flag: str | None = None
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    off: str | None = None
    kind: Callable[[str], Any] | None = None


def param(default: Any, help: str, **cli: Any) -> Any:
    """A parameter field: its default and its command-line spelling (``Cli``'s fields)."""
    return field(default=default, metadata={"cli": Cli(help, **cli)})


def retuned(group: type, name: str, default: Any) -> Any:
    """The parameter ``name`` of ``group`` with another default (same help and flag)."""
    original = next(f for f in dataclasses.fields(group) if f.name == name)
    return field(default=default, metadata=original.metadata)


def cli_of(f: dataclasses.Field[Any]) -> Cli:
    """The command-line spelling of a parameter field."""
    return f.metadata["cli"]


def flag_of(f: dataclasses.Field[Any]) -> str:
    """The option that sets a parameter (``--threads`` for ``num_threads``)."""
    spec = cli_of(f)
    return spec.off or spec.flag or "--" + f.name.replace("_", "-")


# ---------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class EncoderParams:
    """Which encoders read each modality, and the cache of frozen pretrained features."""

    encoders: str | dict[str, str] | None = param(
        None, "encoders per kind or column, e.g. text=transformer,audio=gru (see `mmfuse list "
        "encoders`)", flag="--encoder", metavar="KIND=NAME,...")
    pretrained: bool = param(
        True, "use the packaged pretrained encoders by default where installed",
        off="--no-pretrained")
    finetune: str | None = param(
        None, "train these pretrained encoders too, at a lower learning rate (default: frozen)",
        metavar="KIND[,KIND]")
    cache_dir: str | None = param(
        None, "feature cache of frozen encoders (default: $MMFUSE_CACHE_DIR or ~/.cache/mmfuse)")
    use_cache: bool = param(True, "read and write the feature cache", off="--no-cache")


@dataclass(frozen=True)
class TrainParams:
    """How long and how a model is trained."""

    epochs: int = param(30, "maximum epochs (early stopping may end sooner)")
    batch_size: int = param(64, "records per step")
    lr: float = param(2e-3, "learning rate (AdamW)")
    weight_decay: float = param(1e-4, "AdamW weight decay")
    patience: int = param(6, "early-stopping patience in epochs (0: never stop early)")
    seed: int = param(0, "random seed (same data + seed -> same model on CPU)")
    device: str = param("auto", "auto, cpu or cuda")
    augment: str = param("light", "training-time augmentation", choices=("none", "light", "strong"))
    valid_fraction: float = param(0.2, "share of the data held out for validation without --valid")


@dataclass(frozen=True)
class DataParams:
    """How a table is read and what happens to bad values."""

    kinds: str | dict[str, str] | None = param(
        None, "kind overrides, e.g. zip=categorical,notes=text (or col=ignore)",
        metavar="COL=KIND,...")
    image_size: int = param(32, "image side in pixels")
    base_dir: str | None = param(
        None, "folder against which relative media paths resolve (default: the data file's "
        "folder; for a DataFrame, the current folder)")
    on_bad_record: str = param(
        "raise", "stop on a bad value (raise), or leave the record out (skip; listed in "
        "rejected.csv)", choices=("raise", "skip"))
    missing_files: str = param(
        "error", "a media file that does not exist is an error, or a missing modality",
        choices=("error", "missing"))


@dataclass(frozen=True)
class RuntimeParams:
    """Where and how loudly the work runs."""

    num_threads: int | None = param(None, "CPU threads (default: all cores)", flag="--threads",
                                    kind=int)
    verbose: bool = param(True, "print progress", off="--quiet")


@dataclass(frozen=True)
class FusionParams:
    """The fused model of a classifier or regressor."""

    fusion: str | None = param(None, "fusion operator (see `mmfuse list fusions`; default: the "
                               "level's default)")
    level: str | None = param(None, "fusion level (default: from --fusion, else feature)",
                              choices=("early", "feature", "late"))
    dim: int = param(128, "embedding width of every encoder (and of the fused vector)")
    modality_dropout: float = param(0.3, "probability of hiding each modality of a training "
                                    "sample, so that the model also predicts well without it (0: off)")
    features: list[str] | None = param(None, "columns to use (default: all but the target)",
                                       metavar="COL,...", kind=lambda s: [c.strip() for c in s.split(",") if c.strip()])
    allow_missing_columns: bool = param(
        False, "a feature column absent at predict/evaluate time counts as a missing modality "
        "instead of an error")


@dataclass(frozen=True)
class RetrievalParams:
    """The dual encoder of a retriever."""

    pair: str | None = param(None, "the two columns to map into one space, e.g. image,caption",
                             metavar="COL_A,COL_B")
    dim: int = retuned(FusionParams, "dim", 256)
    embed_dim: int = param(256, "width of the shared space")
    temperature: float = param(0.07, "initial InfoNCE temperature (learned)")
    refit: bool = param(True, "once validation chose the epoch count, train again on all pairs",
                        off="--no-refit")
    projection: str = param(
        "auto", "how pretrained towers reach the shared space (auto: with frozen networks both "
        "are trained and validation keeps the better)", choices=("auto", "linear", "mlp"))


@dataclass(frozen=True)
class RecommendationParams:
    """The tables and towers of a recommender."""

    user: str | None = param(None, "interactions column holding the user id", metavar="COL")
    item: str | None = param(None, "interactions column holding the item id", metavar="COL")
    rating: str | None = param(
        None, "interactions column with a rating or play count (default: every row is a positive)",
        metavar="COL")
    items: str | None = param(
        None, "item table: the --item id column plus content columns (text, image paths, numbers ...)",
        metavar="FILE")
    users: str | None = param(None, "user table: the --user id column plus attribute columns",
                              metavar="FILE")
    social: str | None = param(None, "social table: two user-id columns, one link per row",
                               metavar="FILE")
    social_directed: bool = param(False, "take each social link as one-way, first column to second "
                                  "(default: both ways)")
    embed_dim: int = retuned(RetrievalParams, "embed_dim", 64)
    history_size: int = param(50, "history items per user sampled at each training step")
    id_dropout: float = param(0.3, "share of item ids hidden in training, so that content learns "
                              "to rank items never seen (cold start)")


@dataclass(frozen=True)
class PredictionParams:
    """What a classifier does once trained."""

    calibrate: bool = param(True, "temperature-scale the class probabilities on the validation records "
                            "(classification)", off="--no-calibrate")
    guard: bool = param(True, "at prediction time, treat a modality whose embedding lies far outside the "
                        "training ones (an image drowned in noise, a dead microphone) as missing for that "
                        "record; for decision-level models and models trained with missing modalities",
                        off="--no-guard")


PRESETS = ("auto", "fast", "medium", "best", "none")


@dataclass(frozen=True)
class PresetParams:
    """How much searching a fit does: one model as configured, or a preset's candidates chosen by
    validation within a time budget (``mmfuse.search``)."""

    preset: str | None = param(
        "auto", "search over fusion levels, operators, encoders and modality dropout, keeping what "
        "validation prefers: fast (4 candidates), medium (8, successive halving) or best (46, with "
        "encoders from scratch too; Optuna where installed; then the winner with each pretrained "
        "network fine-tuned); none: one model as the other flags describe; auto (the default): "
        "fast, but one model whenever --level, --fusion, --modality-dropout or --finetune describe "
        "it, with --stream or --resume, and where the prepared records would not fit in memory",
        choices=PRESETS)
    time_limit: float | None = param(
        None, "seconds the whole fit may take, preprocessing included (a preset keeps the best "
        "model finished in time; a single model stops training early); default: none, 3600 for "
        "--preset best", metavar="SECONDS", kind=float)
    metric: str | None = param(
        None, "validation metric that chooses among a preset's models (default: accuracy; rmse "
        "for regression); e.g. f1_macro, roc_auc, log_loss, mae", metavar="NAME")
    ensemble: bool = param(
        True, "let a preset keep several models averaged: on a small table the chosen finalists' models "
        "on every split (bags), else a weighted ensemble when validation prefers it", off="--no-ensemble")


@dataclass(frozen=True)
class ScaleParams:
    """Where a fit keeps its prepared records: in memory, or streamed to disk."""

    stream: bool = param(
        False, "prepare the records to disk a chunk at a time and train from there (memory stays "
        "flat as rows grow); without it, fit streams by itself when the prepared records would "
        "not fit comfortably in the memory available, and says so")
    store_dir: str | None = param(
        None, "folder for streamed records, deleted after the fit (default: the system's "
        "temporary folder; OUT/.records when training on several processes)", metavar="DIR")


# ---------------------------------------------------------------------- per estimator
@dataclass(frozen=True)
class EstimatorParams(ScaleParams, PresetParams, PredictionParams, RuntimeParams, DataParams, TrainParams, EncoderParams, FusionParams):
    """The parameters of MultimodalClassifier and MultimodalRegressor."""


@dataclass(frozen=True)
class RetrieverParams(RuntimeParams, DataParams, TrainParams, EncoderParams, RetrievalParams):
    """The parameters of MultimodalRetriever: contrastive training wants longer runs on bigger
    batches with a lower learning rate and more patience, and wider towers."""

    epochs: int = retuned(TrainParams, "epochs", 40)
    batch_size: int = retuned(TrainParams, "batch_size", 128)
    lr: float = retuned(TrainParams, "lr", 1e-3)
    patience: int = retuned(TrainParams, "patience", 15)


@dataclass(frozen=True)
class RecommenderParams(RuntimeParams, DataParams, TrainParams, EncoderParams, FusionParams,
                        RecommendationParams):
    """The parameters of MultimodalRecommender: sampled-softmax training wants big batches."""

    batch_size: int = retuned(TrainParams, "batch_size", 512)
    patience: int = retuned(TrainParams, "patience", 5)
    dim: int = retuned(FusionParams, "dim", 64)


@dataclass(frozen=True)
class CompareParams(EstimatorParams):
    """The parameters every model of ``mmfuse compare`` shares: it trains many models, so each
    gets a smaller epoch budget."""

    epochs: int = retuned(TrainParams, "epochs", 20)
    preset: str | None = retuned(PresetParams, "preset", "none")  # each row is one model


RUN_TIME = ("num_threads", "device", "batch_size", "cache_dir", "use_cache")
"""How a saved model runs: a command that uses one (evaluate, predict, explain, index, search)
may set these, and nothing it learned."""
INPUT_HANDLING = ("on_bad_record", "missing_files", "base_dir", "verbose")
"""How a command treats its input; a saved model takes their declared defaults, not its
training run's (a model fitted with --on-bad-record skip or --quiet does not predict that way)."""


def names(params: type) -> list[str]:
    """The parameter names of a params class, in declaration order."""
    return [f.name for f in dataclasses.fields(params)]


def defaults(params: type) -> dict[str, Any]:
    """Name -> default of a params class."""
    return {f.name: f.default for f in dataclasses.fields(params)}


def takes_params(params: type) -> Callable[[type[T]], type[T]]:
    """Class decorator: ``__init__`` takes exactly ``params``' fields as keyword arguments
    (stored as attributes, sklearn's contract), with their defaults and a generated docstring;
    ``get_params`` lists them."""

    def decorate(cls: type[T]) -> type[T]:
        declared = dataclasses.fields(params)

        def __init__(self: Any, **kwargs: Any) -> None:  # noqa: N807 - becomes cls.__init__
            unknown = sorted(set(kwargs) - {f.name for f in declared})
            if unknown:
                raise TypeError(f"{type(self).__name__} got unknown parameter(s) {', '.join(unknown)}; "
                                f"valid: {', '.join(f.name for f in declared)}")
            for f in declared:
                setattr(self, f.name, kwargs.get(f.name, f.default))

        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [self_param] + [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                              default=f.default, annotation=f.type)
                            for f in declared])
        __init__.__doc__ = "Args:\n" + "\n".join(
            f"    {f.name}: {cli_of(f).help} (default: {f.default!r})." for f in declared)
        __init__.__qualname__ = f"{cls.__name__}.__init__"
        cls.__init__ = __init__  # type: ignore[misc]
        cls.params_class = params  # type: ignore[attr-defined]
        return cls

    return decorate
