"""The `pccd` command group: how every command fails, and where its output goes.

- Bad input is one line on stderr and exit status 2, usage errors included (click's are a box of several lines).
- Anything printed on sys.stdout while a command runs (force-field banners...) goes to stderr; results reach stdout.
- `--help` into a pipe is click's plain text: rich's boxes cut long option names to fit 80 columns there.
"""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from pccd_flows.cli.common import chatter_on_stderr, fail, one_line, stderr


class PccdGroup(TyperGroup):
    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        _prepare(self, plain_help=not sys.stdout.isatty())
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        # typer's click (typer._click) is private: its exceptions are caught through typer's public base classes
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `pccd data`: the help, as click would print it
                typer.echo(exc.ctx.get_help())
                code = 0
            else:
                _print_usage_error(exc)
                code = exc.exit_code
        except typer.Abort:
            stderr.print("Aborted.", highlight=False)
            code = 1
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: typer.Context) -> Any:
        from pccd_flows.data.io import DataFormatError

        try:
            return super().invoke(ctx)
        except DataFormatError as exc:  # a damaged data file met deep in a command (its message names the file)
            fail(str(exc))
        except EOFError as exc:
            # click reads an EOFError as Ctrl-D at a prompt and prints "Aborted!"; here none of ours prompts, so it
            # comes from a truncated file (gzip's "Compressed file ended before the end-of-stream marker...")
            fail(f"unexpected end of a file: {one_line(exc)} (truncated?)")
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # `pccd query | head`: the reader left, nothing is wrong
                raise
            # a path the user gave that is a directory, a file, unreadable or on a full disk
            fail(_os_error_message(exc))


def _os_error_message(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or one_line(exc) or type(exc).__name__}"


def _print_usage_error(exc: typer.TyperException) -> None:
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    message = one_line(exc.format_message())
    try:
        fail(f"{message}{hint}", code=exc.exit_code)
    except typer.Exit:
        pass


def _prepare(command: Any, plain_help: bool) -> None:
    """Walk the command tree (typer builds it afresh for every run): plain help where asked, and each command's
    own code run with sys.stdout on stderr. Not the whole group: `--help` is printed while arguments are parsed,
    and it is the command's output."""
    if plain_help and hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        if command.callback is not None:
            command.callback = _chatter_on_stderr(command.callback)
        return
    for subcommand in subcommands.values():
        _prepare(subcommand, plain_help)


def _chatter_on_stderr(callback):
    @functools.wraps(callback)
    def run(*args, **kwargs):
        with chatter_on_stderr():
            return callback(*args, **kwargs)

    return run
