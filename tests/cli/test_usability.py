"""What users tripped over: slow start-up of the light commands, `list` tables that cut their
descriptions and showed reStructuredText markup, and progress rates like "532978/s"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmfuse._progress import format_rate
from mmfuse.cli.catalogue import entries, listed_attributes, summary
from mmfuse.cli.main import main
from mmfuse.cli.report import MIN_WRAP, list_encoders_table, list_fusions_table, wrapped_table

HEAVY = ("torch", "pandas", "sklearn", "PIL", "faiss")
"""numpy (0.1-0.2 s) is allowed: the feature cache reads and writes arrays with it."""

PROBE = """
import contextlib, io, json, sys
from mmfuse.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps([code, sorted(m for m in {heavy!r} if m in sys.modules)]))
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["fit", "--help"], ["list", "fusions"], ["list", "encoders"], ["cache", "info"]],
    ids=lambda argv: " ".join(argv),
)
def test_light_commands_import_no_heavy_library(argv: list[str], tmp_path: Path) -> None:
    """torch alone takes 1-2 s to import: the commands that need none stay well under a second."""
    if argv[0] == "cache":
        argv = [*argv, "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "MMFUSE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
                          capture_output=True, text=True, env=env, check=True)  # fmt: skip
    code, imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0
    assert imported == []


# ------------------------------------------------------------------- list tables
@pytest.mark.parametrize("package", ["fusion", "encoders"])
def test_the_source_catalogue_equals_the_registry(package: str) -> None:
    """`mmfuse list` reads the source files; what it reads is what importing registers."""
    from mmfuse.encoders import ENCODERS
    from mmfuse.fusion import FUSIONS

    registry = FUSIONS if package == "fusion" else ENCODERS
    read = {e.name: e for e in entries(package)}
    assert sorted(read) == registry.names()
    for name, entry in read.items():
        cls = registry.get(name)
        assert entry.attributes == listed_attributes(cls), name
        assert summary(entry.doc) == summary(cls.__doc__ or ""), name


def test_inherited_attributes_are_read() -> None:
    confidence = next(e for e in entries("fusion") if e.name == "confidence")
    assert confidence.attributes["level"] == "late"  # declared by its parent, MeanFusion


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("Stride-2 conv blocks over ``(n_mels, T)``, global average\n    pooling, linear projection.\n\n"
         "    Args:\n        dim: width.", "Stride-2 conv blocks over (n_mels, T), global average pooling, linear projection"),
        ("Encodes every frame with :class:`ImageCNNEncoder`. Then pools over time.",
         "Encodes every frame with ImageCNNEncoder"),
        ("Passes vectors unchanged, e.g. for `D`-d inputs", "Passes vectors unchanged, e.g. for D-d inputs"),
        ("", ""),
    ],
)
def test_summary_is_the_first_sentence_without_markup(doc: str, expected: str) -> None:
    assert summary(doc) == expected


def test_list_encoders_wraps_descriptions_instead_of_cutting_them() -> None:
    text = list_encoders_table(width=80)
    assert "``" not in text and ":class:" not in text and "..." not in text
    start = text.splitlines()[0].index("description")  # later if an install hint is long
    assert max(len(line) for line in text.splitlines()) <= max(80, start + MIN_WRAP)
    for entry in entries("encoders"):
        assert summary(entry.doc) in _unwrapped(text), entry.name
    assert "Stride-2 conv blocks over (n_mels, T), global average pooling" in _unwrapped(text)


def _unwrapped(text: str) -> str:
    """The description column with its continuation lines joined."""
    lines = text.splitlines()
    start = lines[0].index("description")
    return " ".join(line[start:].strip() for line in lines[2:])


def test_wrapped_table_puts_continuations_under_the_last_column() -> None:
    rows = [("a", "one two three four five six seven eight nine ten"), ("bb", "short")]
    assert wrapped_table(rows, ("name", "text"), width=26).splitlines() == [
        "name  text",
        "----  --------------------",
        "a     one two three four",
        "      five six seven eight",
        "      nine ten",
        "bb    short",
    ]


def test_list_fusions_shows_every_operator(capsys: pytest.CaptureFixture[str]) -> None:
    from mmfuse.fusion import list_fusions

    assert main(["list", "fusions"]) == 0
    printed = capsys.readouterr().out
    names = [line.split()[0] for line in printed.splitlines()[2:] if line[:1].strip()]
    assert names == list_fusions()
    assert "low-rank tensor fusion (LMF)" in " ".join(list_fusions_table(width=200).split())


# ----------------------------------------------------------------------- progress
@pytest.mark.parametrize(
    ("done", "seconds", "expected"),
    [
        (1000, 0.002, ""),  # a cached step: no rate rather than "500000/s"
        (0, 5.0, ""),
        (500, 2.0, "250/s"),
        (7, 2.0, "3.5/s"),
        (2, 5.0, "2.5 s each"),
    ],
)
def test_format_rate(done: int, seconds: float, expected: str) -> None:
    assert format_rate(done, seconds) == expected


def test_a_fast_step_logs_no_rate(capsys: pytest.CaptureFixture[str]) -> None:
    from mmfuse._progress import track

    assert list(track(range(1000), 1000, "encoding image")) == list(range(1000))
    line = capsys.readouterr().err.strip()
    assert line.startswith("encoding image: 1000/1000 in ")
    assert line.endswith("s") and "/s" not in line


# ----------------------------------------------------------------------- retrieval refit
def test_the_refit_does_not_call_its_scores_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the refit on all pairs, the validation pairs are training pairs: lines say "seen"."""
    from mmfuse.datasets import make_paired_dataset
    from mmfuse.estimators import MultimodalRetriever

    data = make_paired_dataset(tmp_path, n_items=20, captions_per_item=2, seed=0)
    MultimodalRetriever(pair="image,caption", epochs=2, patience=2, dim=8, embed_dim=8,
                        num_threads=1, seed=0).fit(data)  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    refit = next(i for i, line in enumerate(err) if line.startswith("refitting on all 40 pairs"))
    assert "seen_recall_mean is measured on the 8 validation pairs, which the refit trains on" in err[refit]
    assert [line.split()[:2] for line in err[refit + 1:]] == [["epoch", "1/2"], ["epoch", "2/2"], ["kept", "epoch"]]
    assert all("valid_" not in line and "seen_recall_mean=" in line for line in err[refit + 1:refit + 3])
    assert any(line.startswith("kept epoch ") and "best valid_recall_mean=" in line for line in err[:refit])
