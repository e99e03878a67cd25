"""The command line: a lazy table of commands, and one place that maps every error to one line
and an exit code (0 clean, 1 findings, 2 error; 130 ^C, 143 SIGTERM, 129 SIGHUP)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from typing import ClassVar

# Start-up (click, the command's modules) makes ~100,000 objects that live as long as the process
# and almost no garbage: with the default young-generation threshold (700) they are traversed by
# a collection after every few hundred, ~2 ms of a commit hook's run. Raised for the process,
# before click is imported (a scan's garbage is freed by reference counting; cycles are still
# collected, in bigger batches).
gc.set_threshold(20_000, 20, 20)

import click  # noqa: E402 - after the threshold

from kascan import __version__  # noqa: E402
from kascan.model import scrub  # noqa: E402
from kascan.output import escape  # noqa: E402


class _LazyGroup(click.Group):
    """Commands defined in ``kascan.commands.<name>`` are imported only when used (fast start)."""

    lazy: ClassVar[dict[str, str]] = {
        "scan": "kascan.commands.scan",
        "baseline": "kascan.commands.baseline",
        "git": "kascan.commands.git",
        "image": "kascan.commands.image",
        "merge": "kascan.commands.merge",
        "repos": "kascan.commands.repos",
        "verify": "kascan.commands.verify",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            import importlib

            cmd = getattr(importlib.import_module(self.lazy[name]), name)
            if not isinstance(cmd, click.Command):  # pragma: no cover - a packaging error
                return None
            self.add_command(cmd, name)
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kascan")
def cli() -> None:
    """kascan finds leaked Kubeadapt API keys (ka_live_…) in files, trees, stdin and git.

    Exit codes: 0 nothing found, 1 keys found, 2 error, 130 interrupted.
    """


_NO_ARGS: tuple[type[click.ClickException], ...] = tuple(
    getattr(click.exceptions, n) for n in ("NoArgsIsHelpError",) if hasattr(click.exceptions, n)
)
_SIGNALLED: list[int] = []  # the signal that ended the run (SIGTERM, SIGHUP), for the exit code


def _on_signal(signum: int, _frame: object) -> None:
    # SIGTERM/SIGHUP as ^C: the pipeline writes what it found and cleans up (clones, workers),
    # then the exit code says which signal it was (128 + its number)
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line and exit 2 for errors, 130 for ^C, quiet exit on a closed pipe."""
    import atexit
    import signal

    # the interpreter's exit runs a full collection over every object (~4 ms of a hook's run):
    # frozen ones are skipped, and a process that is ending has nothing worth collecting
    atexit.register(gc.freeze)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        rv = cli.main(args=argv, prog_name="kascan", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        signum = _SIGNALLED[0] if _SIGNALLED else signal.SIGINT
        click.echo(f"kascan: interrupted ({signal.Signals(signum).name})", err=True)
        sys.exit(128 + signum)
    except _NO_ARGS as exc:  # plain ``kascan``: the help, as it is (click >= 8.2)
        click.echo(exc.format_message())
        sys.exit(2)
    except click.ClickException as exc:
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f"Try '{exc.ctx.command_path} {exc.ctx.help_option_names[0]}' for help.\n"
            click.echo(exc.ctx.get_usage() + "\n" + hint, err=True)
        click.echo(f"Error: {escape(scrub(exc.format_message()))}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except BrokenPipeError:
        _quiet_pipe()
        sys.exit(0)
    except Exception as exc:  # one line, never a traceback (``--debug`` printed it already)
        click.echo(
            f"kascan: internal error: {type(exc).__name__}: {escape(scrub(str(exc)))}", err=True
        )
        sys.exit(2)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_pipe()
    sys.exit(rv if isinstance(rv, int) else 0)


def _quiet_pipe() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
