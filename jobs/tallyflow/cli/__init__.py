# PYTHON_ARGCOMPLETE_OK
"""The `tallyflow` command line. Mistakes get one line on stderr and exit code 2; failures of
the things it drives (a broker that does not answer, a bad catalog) exit 1; no tracebacks."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from tallyflow.cli import bench, billing, catalog, events, pipeline, serving
from tallyflow.errors import UserError
from tallyflow.faults import InjectedCrash
from tallyflow.settings import Settings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not the usage block
        print(f"tallyflow: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tallyflow", description="Usage-based billing on Kafka, PyFlink and ClickHouse.")
    parser.add_argument("--version", action="version", version=f"tallyflow {_version()}")
    parser.add_argument(
        "--format", dest="global_format", choices=["table", "json"], help="output format of any subcommand"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in (pipeline, events, billing, catalog, bench, serving):
        group.register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tallyflow")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:  # shell completion: `eval "$(register-python-argcomplete tallyflow)"`
        import argcomplete

        argcomplete.autocomplete(parser)
    except ImportError:
        pass
    args = parser.parse_args(argv)
    if hasattr(args, "format"):
        args.format = args.format or args.global_format or "table"
    # Every file tallyflow and the processes it starts write (the store, Kafka's logs, checkpoints)
    # is its user's alone: 0600 files in 0700 directories.
    os.umask(0o077)
    # A user's text quoted in an answer may hold what UTF-8 cannot write (a lone surrogate): escaped.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        settings = Settings.from_env()
        return args.func(args, settings)
    except InjectedCrash:
        # TALLYFLOW_FAULT=loader-after-insert: die between an insert and its commit, like a kill.
        sys.stdout.flush()
        os._exit(137)
    except UserError as e:
        print(f"tallyflow: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tallyflow: interrupted", file=sys.stderr)
        return 130


def _reserve_stdout() -> None:
    """Keep file descriptor 1 for the command's own output. The JVM that PyFlink starts, and any
    other child, inherits it: a Java stack trace printed while a job shuts down once landed after
    the `--format json` document and broke every script reading it. Children now write to stderr."""
    try:
        out = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no stdout or stderr to speak of (a detached daemon): nothing to protect
        return
    line = 1 if sys.stdout.line_buffering else -1  # a terminal sees each line as it is printed
    sys.stdout = os.fdopen(out, "w", buffering=line, encoding=sys.stdout.encoding)


def console() -> NoReturn:
    """The `tallyflow` executable (and `python -m tallyflow.cli`)."""
    _reserve_stdout()
    sys.exit(main())


if __name__ == "__main__":
    console()
