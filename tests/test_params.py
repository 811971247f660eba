"""Parameters are declared once (mmfuse.params): the Python keywords, the CLI flags, their
defaults and help text all come from the same fields, for every estimator."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

import mmfuse
from mmfuse.cli.main import command_parser, main
from mmfuse.params import (
    CompareParams, EstimatorParams, RetrieverParams, cli_of, defaults, flag_of, names,
)  # fmt: skip

ESTIMATORS = [(mmfuse.MultimodalClassifier, EstimatorParams),
              (mmfuse.MultimodalRegressor, EstimatorParams),
              (mmfuse.MultimodalRetriever, RetrieverParams)]


@pytest.mark.parametrize(("cls", "params"), ESTIMATORS, ids=lambda x: getattr(x, "__name__", ""))
def test_python_keywords_and_defaults_are_the_declarations(cls: type, params: type) -> None:
    signature = inspect.signature(cls.__init__).parameters
    assert [n for n in signature if n != "self"] == names(params)
    assert {n: p.default for n, p in signature.items() if n != "self"} == defaults(params)
    assert cls().get_params() == defaults(params)
    assert cls.params_class is params


@pytest.mark.parametrize("params", [EstimatorParams, RetrieverParams], ids=["estimator", "retriever"])
def test_every_parameter_is_a_fit_flag_with_its_help(params: type) -> None:
    parser = command_parser("fit")
    help_text = " ".join(parser.format_help().split())  # argparse wraps lines
    for f in dataclasses.fields(params):
        assert flag_of(f) in help_text
        assert " ".join(cli_of(f).help.split()) in help_text
    given = vars(parser.parse_args(["d.csv", "--out", "m"]))
    assert not set(given) & set(names(params))  # unset options: the estimator's own default applies


def _captured_fit(monkeypatch: pytest.MonkeyPatch, cls: type) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_fit(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.update(self.get_params())
        raise mmfuse.errors.MmfuseError("stop here")

    monkeypatch.setattr(cls, "fit", fake_fit)
    return seen


def test_cli_retrieval_fit_uses_the_retriever_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen = _captured_fit(monkeypatch, mmfuse.MultimodalRetriever)
    assert main(["fit", "pairs.csv", "--task", "retrieval", "--pair", "image,caption",
                 "--out", str(tmp_path / "m")]) == 2
    assert seen == {**defaults(RetrieverParams), "pair": "image,caption"}
    assert (seen["epochs"], seen["batch_size"], seen["lr"], seen["patience"], seen["dim"]) == (
        mmfuse.MultimodalRetriever().epochs, 128, 1e-3, 15, 256)


def test_cli_classifier_fit_uses_the_estimator_defaults_and_the_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _captured_fit(monkeypatch, mmfuse.MultimodalClassifier)
    argv = ["fit", "d.csv", "--target", "y", "--task", "classification", "--out", str(tmp_path / "m"),
            "--epochs", "7", "--no-pretrained", "--quiet", "--threads", "2", "--features", "a, b",
            "--no-cache", "--modality-dropout", "0.3"]
    assert main(argv) == 2
    expected = {**defaults(EstimatorParams), "epochs": 7, "pretrained": False, "verbose": False,
                "num_threads": 2, "features": ["a", "b"], "use_cache": False, "modality_dropout": 0.3}
    assert seen == expected


def test_options_of_another_estimator_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["fit", "d.csv", "--task", "retrieval", "--pair", "a,b", "--fusion", "concat", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--fusion does not apply to --task retrieval" in capsys.readouterr().err
    argv = ["fit", "d.csv", "--target", "y", "--embed-dim", "64", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--embed-dim does not apply to classification or regression" in capsys.readouterr().err


def test_compare_defaults_are_one_declaration() -> None:
    signature = inspect.signature(mmfuse.compare)
    assert "epochs" not in signature.parameters  # taken as **params, defaulting to CompareParams
    help_text = " ".join(command_parser("compare").format_help().split())
    assert "--epochs EPOCHS maximum epochs (early stopping may end sooner) (default: 20)" in help_text
    assert defaults(CompareParams)["epochs"] == 20


@pytest.mark.parametrize("command", ["evaluate", "predict", "explain", "index", "search"])
def test_commands_that_compute_take_the_run_options(command: str) -> None:
    help_text = command_parser(command).format_help()
    assert all(flag in help_text for flag in ("--threads", "--device", "--batch-size", "--cache-dir"))


def test_hints_name_the_flag_on_the_command_line_and_the_keyword_in_python() -> None:
    from mmfuse._hints import from_cli, option

    assert option("on_bad_record", "skip") == "on_bad_record='skip'"
    assert option("allow_missing_columns") == "allow_missing_columns=True"
    with from_cli():
        assert option("on_bad_record", "skip") == "--on-bad-record skip"
        assert option("allow_missing_columns") == "--allow-missing-columns"
    assert option("on_bad_record", "skip") == "on_bad_record='skip'"
