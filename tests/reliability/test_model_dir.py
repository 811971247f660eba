"""Battery, model directories: tampered, truncated, empty, edited or incomplete files, and
pickles planted in the directory.

Issue 11 items 2 and 3: 2,000 flipped bytes in model.safetensors predicted one class for every
row with exit 0, and broken files gave SafetensorError, JSONDecodeError, KeyError and TypeError
tracebacks. A model directory is now verified before it is used (the weights' SHA-256, the
format version, each JSON section) and nothing in it is ever unpickled.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from file_damage import edit_json, flip_bytes, halve, plant, replace_with_folder
from reliability_harness import Result, expect_user_error, snapshot

import mmfuse
from mmfuse.errors import MmfuseError

FIX = "fit the model again"
TAMPERED = "the weights were changed or corrupted after saving"


def set_key(section: str | None, key: str, value: object) -> Callable[[dict], object]:
    return lambda doc: (doc[section] if section else doc).__setitem__(key, value)


# kind -> (damage, the damaged file, what the message says is wrong)
CASES: dict[str, tuple[Callable[[Path], object], str, str]] = {
    "weights_2000_flipped_bytes": (lambda d: flip_bytes(d / "model.safetensors"), "model.safetensors", TAMPERED),
    "weights_truncated": (lambda d: halve(d / "model.safetensors"), "model.safetensors", TAMPERED),
    "weights_empty": (lambda d: (d / "model.safetensors").write_bytes(b""), "model.safetensors", TAMPERED),
    "weights_a_folder": (lambda d: replace_with_folder(d / "model.safetensors"), "model.safetensors", "not a regular file"),
    "config_truncated": (lambda d: halve(d / "config.json"), "config.json", "is not valid JSON"),
    "config_empty": (lambda d: (d / "config.json").write_text(""), "config.json", "is empty"),
    "config_a_json_array": (lambda d: (d / "config.json").write_text("[1, 2]"), "config.json", "holds a JSON array, not an object"),
    "config_not_utf8": (lambda d: (d / "config.json").write_bytes(b'{"a": "\xff"}'), "config.json", "is not UTF-8 text"),
    "config_a_folder": (lambda d: replace_with_folder(d / "config.json"), "config.json", "not a regular file"),
    "config_missing_section": (lambda d: edit_json(d / "config.json", lambda c: c.pop("model")), "config.json", "has no 'model' section"),
    "config_unknown_training_key": (
        lambda d: edit_json(d / "config.json", set_key("training", "turbo", True)),
        "config.json", "section 'training' has unknown key(s) 'turbo'",
    ),
    "config_unknown_param": (
        lambda d: edit_json(d / "config.json", set_key("params", "turbo", True)),
        "config.json", "section 'params' has unknown key(s) 'turbo'",
    ),
    "config_wrong_type": (
        lambda d: edit_json(d / "config.json", set_key("model", "dim", "big")),
        "config.json", "section 'model': dim is 'big' (a JSON string); expected int",
    ),
    "config_section_not_an_object": (
        lambda d: edit_json(d / "config.json", set_key(None, "training", "fast")),
        "config.json", "section 'training' holds a JSON string, not an object",
    ),
    "config_unknown_estimator": (
        lambda d: edit_json(d / "config.json", set_key(None, "estimator", "os.system")),
        "config.json", "unknown estimator 'os.system'",
    ),
    "format_version_missing": (
        lambda d: edit_json(d / "config.json", lambda c: c.pop("format_version")),
        "config.json", "has no format_version (this mmfuse reads format version 1)",
    ),
    "format_version_a_string": (
        lambda d: edit_json(d / "config.json", set_key(None, "format_version", "1")),
        "config.json", "format_version '1' is not one this mmfuse reads (format version 1)",
    ),
    "format_version_newer": (
        lambda d: edit_json(d / "config.json", set_key(None, "format_version", 99)),
        "config.json", "format_version 99 is newer than this mmfuse",
    ),
    "fingerprint_missing": (
        lambda d: edit_json(d / "config.json", lambda c: c.pop("fingerprint")),
        "config.json", "records no fingerprint (the SHA-256 of model.safetensors)",
    ),
    "fingerprint_not_a_digest": (
        lambda d: edit_json(d / "config.json", set_key(None, "fingerprint", 42)),
        "config.json", "fingerprint 42 is not the SHA-256 of model.safetensors",
    ),
    "preprocess_truncated": (lambda d: halve(d / "preprocess.json"), "preprocess.json", "is not valid JSON"),
    "preprocess_missing_section": (
        lambda d: edit_json(d / "preprocess.json", lambda c: c.pop("schema")),
        "preprocess.json", "has no 'schema' section",
    ),
    "preprocess_wrong_shape": (
        lambda d: edit_json(d / "preprocess.json", set_key(None, "vocabularies", [])),
        "preprocess.json", "cannot be read (AttributeError",
    ),
    "preprocess_unknown_key": (
        lambda d: edit_json(d / "preprocess.json", set_key("config", "turbo", 1)),
        "preprocess.json", "unexpected keyword argument 'turbo'",
    ),
    "metrics_truncated": (lambda d: halve(d / "metrics.json"), "metrics.json", "is not valid JSON"),
    "metrics_a_json_array": (lambda d: (d / "metrics.json").write_text("[]"), "metrics.json", "holds a JSON array"),
    "history_empty": (lambda d: (d / "history.csv").write_text(""), "history.csv", "is empty"),
    "history_binary_garbage": (lambda d: (d / "history.csv").write_bytes(bytes(range(256)) * 4), "history.csv", "is not a CSV table"),
    "history_a_folder": (lambda d: replace_with_folder(d / "history.csv"), "history.csv", "not a regular file"),
}  # fmt: skip

MISSING = ("model.safetensors", "config.json", "preprocess.json", "metrics.json", "history.csv")


def predict(cli: Callable[..., Result], model: Path, data: Path, out: Path) -> Result:
    return cli("predict", model, data, "--out", out)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_broken_model_file_is_named_and_refused(
    cli: Callable[..., Result], fresh_model: Path, trained: tuple[Path, Path], tmp_path: Path, kind: str
) -> None:
    damage, name, what = CASES[kind]
    damage(fresh_model)
    data = trained[1]
    before = snapshot(fresh_model, data.parent)
    out = tmp_path / "predictions.csv"
    expect_user_error(predict(cli, fresh_model, data, out), f"{fresh_model / name}", what, FIX)
    assert snapshot(fresh_model, data.parent) == before  # a failed load never modifies the model
    assert not out.exists()


@pytest.mark.parametrize("name", MISSING)
def test_missing_model_file_is_named(
    cli: Callable[..., Result], fresh_model: Path, trained: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    (fresh_model / name).unlink()
    before = snapshot(fresh_model)
    result = predict(cli, fresh_model, trained[1], tmp_path / "p.csv")
    expect_user_error(result, f"{fresh_model} is not an mmfuse model directory: {name} is missing", FIX)
    assert snapshot(fresh_model) == before


def test_model_path_that_is_a_file_or_absent(cli: Callable[..., Result], trained: tuple[Path, Path], tmp_path: Path) -> None:
    afile = tmp_path / "model.txt"
    afile.write_text("not a model")
    expect_user_error(predict(cli, afile, trained[1], tmp_path / "p.csv"), f"{afile} is a file, not a model directory")
    absent = tmp_path / "nowhere"
    expect_user_error(predict(cli, absent, trained[1], tmp_path / "p.csv"), f"model directory not found: {absent}")


@pytest.mark.parametrize("command", ["evaluate", "explain", "predict"])
def test_tampered_weights_are_refused_by_every_command(
    cli: Callable[..., Result], fresh_model: Path, trained: tuple[Path, Path], tmp_path: Path, command: str
) -> None:
    flip_bytes(fresh_model / "model.safetensors")
    before = snapshot(fresh_model)
    out = tmp_path / "out"
    args = [trained[1]] if command == "evaluate" else [trained[1], "--out", out]
    result = cli(command, fresh_model, *args)
    expect_user_error(result, str(fresh_model / "model.safetensors"), TAMPERED, FIX)
    assert snapshot(fresh_model) == before and not out.exists()


def test_python_load_verifies_the_weights(fresh_model: Path) -> None:
    assert mmfuse.load(fresh_model).fingerprint_ == hashlib.sha256(
        (fresh_model / "model.safetensors").read_bytes()
    ).hexdigest()
    flip_bytes(fresh_model / "model.safetensors", count=1)
    with pytest.raises(MmfuseError, match=TAMPERED):
        mmfuse.load(fresh_model)


def test_the_planted_pickle_would_run_if_loaded(tmp_path: Path) -> None:
    """The other pickle tests can fail: unpickling one of these creates its marker."""
    marker = tmp_path / "PWNED"
    plant(tmp_path / "x.pkl", marker)
    pickle.loads((tmp_path / "x.pkl").read_bytes())
    assert marker.exists()


def test_planted_pickles_are_never_loaded(
    cli: Callable[..., Result], fresh_model: Path, trained: tuple[Path, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    for name in ("model.pkl", "model.pt", "preprocess.pkl", "pytorch_model.bin", "config.pkl"):
        plant(fresh_model / name, marker)
    before = snapshot(fresh_model)
    out = tmp_path / "predictions.csv"
    result = predict(cli, fresh_model, trained[1], out)
    assert result.code == 0, result.err
    assert out.exists() and not marker.exists()
    assert mmfuse.load(fresh_model) is not None and not marker.exists()
    assert snapshot(fresh_model) == before


@pytest.mark.parametrize("fingerprint_updated", [False, True], ids=["as_saved", "fingerprint_forged"])
def test_weights_replaced_by_a_pickle_are_refused_unread(
    cli: Callable[..., Result], fresh_model: Path, trained: tuple[Path, Path], tmp_path: Path, fingerprint_updated: bool
) -> None:
    marker = tmp_path / "PWNED"
    weights = fresh_model / "model.safetensors"
    plant(weights, marker)
    what = TAMPERED
    if fingerprint_updated:  # config.json edited to match: the file is still only parsed as safetensors
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        edit_json(fresh_model / "config.json", set_key(None, "fingerprint", digest))
        what = "is not a complete safetensors file"
    before = snapshot(fresh_model)
    expect_user_error(predict(cli, fresh_model, trained[1], tmp_path / "p.csv"), str(weights), what, FIX)
    assert not marker.exists()
    assert snapshot(fresh_model) == before
