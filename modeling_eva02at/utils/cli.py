"""The one command-line pattern of the `examples/` scripts.

Each script declares its arguments once, as dataclasses (the package's, next to the function they configure), parses
them with transformers' `HfArgumentParser` (:func:`parse_arguments`: `--flag-name` and `--flag_name` both work, as
does a JSON or YAML file of arguments), calls package functions, and runs under :func:`run_script`, which reports a
user's mistake (a missing file, a wrong path or Hub id, a bad value, a mismatched index) as one line
``error: ...`` with exit status 2, never a traceback. Set EVA02AT_DEBUG=1 to see the traceback instead.

Importing this module is cheap (transformers' argument parser only), so the scripts answer --help at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from transformers import HfArgumentParser


USER_ERRORS = (OSError, ValueError, ImportError)
"""What a user's mistake raises in this package: OSError for files, folders, Hub ids and tokens
(FileNotFoundError, PermissionError, ...), ValueError for values (IndexMismatchError, VideoDecodeError, ...), and
ImportError for an optional package that is not installed (the message says what to install)."""


class UsageError(ValueError):
    """A command line that cannot be parsed or whose arguments do not go together."""


class ScriptArgumentParser(HfArgumentParser):
    """`HfArgumentParser` whose errors are exceptions (reported by :func:`run_script`) rather than an exit with the
    usage text, so that `main(argv)` can be called from Python too."""

    def error(self, message: str):
        raise UsageError(f"{message} (--help lists the arguments)")


def flag_given(argv: Sequence[str], name: str) -> bool:
    """Whether `argv` sets the argument `name` (as --name, --name=..., with dashes or underscores)."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    return any(arg.split("=", 1)[0] in spellings for arg in argv)


def parse_arguments(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    defaults: dict[str, Any] | None = None,
    prog: str | None = None,
) -> tuple:
    """Parse `argv` (default: the command line) into one instance of each of `dataclass_types`.

    Args:
        description: the --help text (a script passes its docstring).
        defaults: values that replace the dataclasses' defaults (a recipe's or the demo's); flags still win.
        prog: the program name in messages (default: the script's file name).

    Raises:
        UsageError: an unknown flag, a missing required one, a value of the wrong type or outside its choices, or a
            dataclass's own check (`__post_init__`) failing.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = ScriptArgumentParser(
        dataclass_types, prog=prog, description=description, allow_abbrev=False, formatter_class=_HelpFormatter
    )
    if defaults:
        parser.set_defaults(**defaults)
    try:
        *parsed, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ValueError as error:  # a dataclass's __post_init__: the value a flag gave is wrong
        if isinstance(error, UsageError):
            raise
        raise UsageError(str(error)) from error
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (--help lists the arguments)")
    return tuple(parsed)


def one_line(message: str) -> str:
    """`message` on one line: its lines joined, a line ending in ':' followed by a space, others by '; '."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    for line in lines[1:]:
        text += (" " if text.endswith(":") else "; ") + line
    return text


def run_script(main: Callable[[], Any]) -> None:
    """Run a script's `main()` and exit: 0 on success, 2 with ``error: <one line>`` on stderr for a user's mistake
    (:data:`USER_ERRORS`). With EVA02AT_DEBUG=1 the exception is raised as it is (with its traceback)."""
    try:
        main()
    except USER_ERRORS as error:
        if os.environ.get("EVA02AT_DEBUG"):
            raise
        print(f"error: {one_line(str(error)) or type(error).__name__}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(0)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps a script's docstring (its usage examples) as written and shows each argument's default."""


__all__ = [
    "USER_ERRORS",
    "ScriptArgumentParser",
    "UsageError",
    "flag_given",
    "one_line",
    "parse_arguments",
    "run_script",
]
