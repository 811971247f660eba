"""The ``mmfuse`` command: an argparse table of sub-commands, each a typed function.

``main(argv)`` returns the exit code (0 success, 2 usage or data error, 1 unexpected failure)
so tests can call it directly.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from mmfuse._hints import from_cli
from mmfuse.errors import MmfuseError

EPILOG = """examples:
  mmfuse demo --out demo_out
  mmfuse info data.csv --target label
  mmfuse fit data.csv --target label --out model --fusion attention --epochs 20
  mmfuse evaluate model test.csv --json metrics.json
  mmfuse predict model new.csv --out predictions.csv
  mmfuse list fusions
"""


def _parser() -> argparse.ArgumentParser:
    from mmfuse.cli import commands as c

    parser = argparse.ArgumentParser(
        prog="mmfuse",
        description="Multimodal data fusion: images, text, audio, video and tables in one model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mmfuse {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for spec in c.COMMANDS:
        _add_command(sub, spec)
    return parser


def _add_command(sub: Any, spec: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        spec.name,
        help=spec.help,
        description=spec.help,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in spec.examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    spec.add_arguments(p)
    p.set_defaults(handler=spec.run)
    return p


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one sub-command, as ``mmfuse NAME`` uses it (for tests and docs)."""
    from mmfuse.cli import commands as c

    spec = next((s for s in c.COMMANDS if s.name == name), None)
    if spec is None:
        raise KeyError(f"unknown command {name!r}; choose one of: {', '.join(s.name for s in c.COMMANDS)}")
    return _add_command(argparse.ArgumentParser(prog="mmfuse").add_subparsers(), spec)


def _version() -> str:
    from mmfuse import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return int(exit_.code or 0)
    try:
        with from_cli():  # messages name flags, not Python keywords
            return int(args.handler(args) or 0)
    except MmfuseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    except OSError as err:  # the system refused a path the user gave (permissions, disk full)
        if err.filename is None:
            return _unexpected(err)
        print(f"error: {err.filename}: {err.strerror or err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a bug: one line, the traceback only on request
        return _unexpected(err)


DEBUG_ENV = "MMFUSE_DEBUG"


def _unexpected(err: BaseException) -> int:
    """Exit 1 for a failure mmfuse did not foresee: one line, or the traceback with $MMFUSE_DEBUG."""
    if os.environ.get(DEBUG_ENV):
        traceback.print_exc()
    else:
        print(f"error: unexpected failure ({type(err).__name__}: {err}). This is a bug in mmfuse; "
              f"run again with {DEBUG_ENV}=1 to see the traceback and report it.", file=sys.stderr)
    return 1


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
