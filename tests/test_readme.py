"""The README's snippets and commands keep working; its two commands exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mmfuse.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _mmfuse_commands() -> list[list[str]]:
    """Every ``mmfuse ...`` command line of the README's bash blocks, comments removed."""
    commands = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["mmfuse"]:
                commands.append(words[1:])
    return commands


def test_readme_python_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = _blocks("python")
    assert blocks, "the README has no python snippet"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MMFUSE_NUM_THREADS", "1")
    for code in blocks:
        # Fewer demo records keep the test fast; everything else runs exactly as written.
        code = code.replace("n=200", "n=40")
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "attention" in out  # print(mmfuse.list_fusions())
    assert (tmp_path / "demo_model" / "model.safetensors").exists()


def test_readme_commands_are_real_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _mmfuse_commands()
    assert len(commands) >= 5
    for words in commands:
        assert main([words[0], "--help"]) == 0, f"`mmfuse {words[0]}` is not a command"
        if words[0] == "list":
            assert main(words) == 0, f"`mmfuse {' '.join(words)}` fails"
    capsys.readouterr()


def test_readme_options_exist(capsys: pytest.CaptureFixture[str]) -> None:
    """Every `--option` the README names is an option of some sub-command."""
    from mmfuse.cli.commands import COMMANDS

    help_text = ""
    for command in COMMANDS:
        assert main([command.name, "--help"]) == 0
        help_text += capsys.readouterr().out
    for option in set(re.findall(r"`(--[a-z-]+)", README)):
        assert option in help_text, f"README mentions {option}, which no command has"


def test_readme_commands_parse() -> None:
    """Every README command line parses: a usage error would exit 2 before touching data."""
    from mmfuse.cli import main as cli_main

    parser = cli_main._parser()
    for words in _mmfuse_commands():
        parser.parse_args(words)  # raises SystemExit on an unknown option or a missing argument


def test_makefile_targets_and_ci() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z_][\w.-]*):", makefile, flags=re.MULTILINE))
    assert {"demo", "test"} <= targets
    assert re.search(r"^test:.*\n(\t.*\n)*\t.*pytest", makefile, flags=re.MULTILINE)
    assert re.search(r"^demo:.*\n(\t.*\n)*\t.*mmfuse demo", makefile, flags=re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, flags=re.MULTILINE)
    assert "make demo" in README and "make test" in README
