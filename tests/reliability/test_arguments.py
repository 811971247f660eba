"""Bad options: every one is exit 2 with a message naming the option, the value and the choices,
before any model is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_harness import expect_user_error, tiny_frame, write_csv

QUICK = ["--dim", "8", "--threads", "1", "--quiet", "--no-pretrained"]

CASES = {
    "epochs 0": (["--epochs", "0"], "epochs and batch size must be at least 1"),
    "batch size 0": (["--batch-size", "0"], "epochs and batch size must be at least 1"),
    "dim 0": (["--dim", "0"], "dim must be at least 1, got 0"),
    "negative lr": (["--lr", "-1"], "lr=-1.0"),
    "dropout 2": (["--modality-dropout", "2"], "modality dropout must be in [0, 1), got 2.0"),
    "threads 0": (["--threads", "0"], "threads must be at least 1, got 0"),
    "image size 0": (["--image-size", "0"], "image_size must be at least 1, got 0"),
    "negative patience": (["--patience", "-1"], "patience=-1"),
    "negative seed": (["--seed", "-5"], "seed must be an integer from 0 to 4294967295, got -5"),
    "unknown device": (["--device", "tpu"], "unknown device 'tpu'; choose one of: auto, cpu, cuda"),
    "unknown level": (["--level", "middle"], "invalid choice: 'middle'"),
    "unknown fusion": (["--fusion", "bogus"], "unknown fusion 'bogus'; choose one of: attention"),
    "unknown encoder": (["--encoder", "image=bert"], "unknown image encoder 'bert'; choose one of"),
    "encoder without kind": (["--encoder", "image"], "--encoder: expected COLUMN=VALUE, got 'image'"),
    "kinds without kind": (["--kinds", "photo"], "--kinds: expected COLUMN=VALUE, got 'photo'"),
    "unknown kind": (["--kinds", "photo=picture"], "unknown kind 'picture' for column 'photo'"),
    "target as feature": (["--features", "label"], "--features lists only the target column 'label'"),
    "unknown feature": (["--features", "photo,colur"], "unknown column 'colur'"),
    "missing valid file": (["--valid", "nope.csv"], "data file not found: nope.csv"),
    "finetune without pretrained": (["--finetune", "image"], "fine-tuning applies to modalities with a pretrained encoder"),
    "pair without retrieval": (["--pair", "photo"], "takes no --target"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_option(cli, media, tmp_path: Path, name: str) -> None:
    args, message = CASES[name]
    data = write_csv(tiny_frame(media), tmp_path)
    out = tmp_path / "model"
    result = cli("fit", data, "--target", "label", "--out", out, "--epochs", "1", *QUICK, *args)
    expect_user_error(result, message)
    assert not (out / "model.safetensors").exists()


def test_header_only_validation_file(cli, media, tmp_path: Path) -> None:
    data = write_csv(tiny_frame(media), tmp_path)
    valid = tmp_path / "valid.csv"
    valid.write_text("photo,note,price,colour,label\n")
    result = cli("fit", data, "--target", "label", "--out", tmp_path / "m", *QUICK, "--valid", valid)
    expect_user_error(result, f"{valid}: no validation records")


def test_retrieval_without_pair(cli, media, tmp_path: Path) -> None:
    data = write_csv(tiny_frame(media), tmp_path)
    result = cli("fit", data, "--task", "retrieval", "--out", tmp_path / "m", *QUICK)
    expect_user_error(result, "--task retrieval needs --pair COL_A,COL_B")


@pytest.mark.parametrize("rows", ["5", "0", "-3"])
def test_demo_with_too_few_rows(cli, tmp_path: Path, rows: str) -> None:
    expect_user_error(cli("demo", "--out", tmp_path / "d", "--rows", rows), "--rows must be at least 60")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("argv", [[], ["fit"], ["list", "nothing"], ["frobnicate"]])
def test_usage_errors(cli, argv: list[str]) -> None:
    result = cli(*argv)
    assert result.code == 2 and "usage: mmfuse" in result.err
