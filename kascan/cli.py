"""The command line: builds the pipeline (sources -> match -> suppress -> report) and maps every
error to one line and an exit code (0 clean, 1 findings, 2 error, 130 interrupted)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import click

from kascan import __version__
from kascan.errors import KascanError
from kascan.model import Chunk, Finding, scrub
from kascan.report import EXTENSIONS, FORMATS, ReportContext
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.sources.decode import Decoders

F = TypeVar("F", bound=Callable[..., object])

_DEBUG = False


@dataclass(frozen=True)
class Output:
    fmt: str
    path: Path | None  # None: stdout


@dataclass
class Options:
    rules: tuple[Path, ...] = ()
    excludes: tuple[str, ...] = ()
    baselines: tuple[Path, ...] = ()
    config: Path | None = None
    fmt: str = "text"
    outputs: tuple[Output, ...] = ()
    show_secrets: bool = False
    quiet: bool = False
    color: str = "auto"
    command: str = "scan"
    notes: list[str] = field(default_factory=list)


def parse_output(value: str, default_fmt: str) -> Output:
    fmt, sep, rest = value.partition(":")
    if sep and fmt in FORMATS and rest:
        return Output(fmt, None if rest == "-" else Path(rest))
    if value == "-":
        return Output(default_fmt, None)
    ext = Path(value).suffix.lower()
    return Output(EXTENSIONS.get(ext, default_fmt), Path(value))


def plan_outputs(fmt: str, fmt_given: bool, outputs: Sequence[str]) -> tuple[Output, ...]:
    """``-o`` files; stdout gets the ``--format`` report unless an ``-o`` already takes it."""
    parsed = [parse_output(o, fmt) for o in outputs]
    if not parsed:
        return (Output(fmt, None),)
    if any(o.path is None for o in parsed):
        return tuple(parsed)
    if (fmt_given and all(o.fmt != fmt for o in parsed)) or (
        not fmt_given and fmt == "text" and all(o.fmt != "text" for o in parsed)
    ):
        parsed.insert(0, Output(fmt, None))
    return tuple(parsed)


def common_options(f: F) -> F:
    opts = [
        click.option(
            "--rules",
            "rules",
            multiple=True,
            type=click.Path(path_type=Path, dir_okay=False),
            help="Add rules from a gitleaks-format TOML file (repeatable).",
        ),
        click.option(
            "--baseline",
            "baselines",
            multiple=True,
            type=click.Path(path_type=Path, dir_okay=False),
            help="A JSON report written earlier by kascan: its keys are not reported again.",
        ),
        click.option(
            "--config",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Config file (default: .kascan.toml or [tool.kascan] in pyproject.toml).",
        ),
        click.option(
            "-f",
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default=None,
            help="Report format on stdout (default text).",
        ),
        click.option(
            "-o",
            "--output",
            "outputs",
            multiple=True,
            metavar="[FORMAT:]FILE",
            help="Write a report to FILE (format from FORMAT:, the extension, or --format); "
            "repeatable; '-' is stdout.",
        ),
        click.option(
            "--show-secrets",
            is_flag=True,
            help="Print full keys in reports (never the default).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No summary, warnings or progress."),
        click.option(
            "--color",
            type=click.Choice(["auto", "always", "never"]),
            default="auto",
            show_default=True,
            help="Colour in the text report.",
        ),
        click.option("--debug", is_flag=True, help="Show tracebacks of internal errors."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def decoder_options(f: F) -> F:
    """Switches for what a scan looks inside (shared by every command that reads content)."""
    opts = [
        click.option(
            "--no-archives",
            is_flag=True,
            help="Do not look inside zip/jar/apk/whl, tar and gzip/bzip2/xz files.",
        ),
        click.option("--no-base64", is_flag=True, help="Do not decode base64-encoded keys."),
        click.option("--no-utf16", is_flag=True, help="Do not look for keys in UTF-16 text."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def decoders_from(kw: dict[str, object]) -> Decoders:
    from kascan.sources.decode import Decoders

    return Decoders(
        archives=not kw.pop("no_archives", False),
        base64=not kw.pop("no_base64", False),
        utf16=not kw.pop("no_utf16", False),
    )


def _options(command: str, **kw: object) -> Options:
    global _DEBUG
    _DEBUG = bool(kw.get("debug"))
    fmt_opt = kw.get("fmt")
    fmt = str(fmt_opt) if fmt_opt else "text"
    outputs = kw.get("outputs") or ()
    return Options(
        rules=tuple(kw.get("rules") or ()),  # type: ignore[arg-type]
        excludes=tuple(kw.get("excludes") or ()),  # type: ignore[arg-type]
        baselines=tuple(kw.get("baselines") or ()),  # type: ignore[arg-type]
        config=kw.get("config"),  # type: ignore[arg-type]
        fmt=fmt,
        outputs=plan_outputs(fmt, fmt_opt is not None, list(outputs)),  # type: ignore[call-overload]
        show_secrets=bool(kw.get("show_secrets")),
        quiet=bool(kw.get("quiet")),
        color=str(kw.get("color") or "auto"),
        command=command,
    )


class Reporter:
    """Streams text findings to the terminal as they are found; writes every report at the end."""

    def __init__(self, opts: Options, stats: ScanStats) -> None:
        self.opts = opts
        self.stats = stats
        self.findings: list[Finding] = []
        self.stream_text = any(o.path is None and o.fmt == "text" for o in opts.outputs)
        color = opts.color == "always" or (
            opts.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
        )
        self.ctx = ReportContext(
            stats, show_secrets=opts.show_secrets, color=color, command=opts.command
        )

    def warn(self, message: str) -> None:
        self.stats.warnings += 1
        if not self.opts.quiet:
            click.echo(f"kascan: warning: {scrub(message)}", err=True)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)
        if self.stream_text:
            from kascan.report.text_report import format_finding

            click.echo(format_finding(finding, self.ctx))

    def finish(self, notes: Sequence[str] = ()) -> None:
        from kascan.report import renderer
        from kascan.report.text_report import summary_lines

        ctx = replace(self.ctx, notes=tuple(notes))
        for out in self.opts.outputs:
            if out.path is None:
                if out.fmt == "text":
                    if not self.opts.quiet:
                        for line in summary_lines(self.stats, ctx, len(self.findings)):
                            click.echo(line)
                    continue
                renderer(out.fmt)(self.findings, sys.stdout, replace(ctx, color=False))
                sys.stdout.flush()
            else:
                self._write_file(out.fmt, out.path, replace(ctx, color=False))
        if not self.stream_text and not self.opts.quiet:
            for line in summary_lines(self.stats, ctx, len(self.findings)):
                click.echo(line, err=True)

    def _write_file(self, fmt: str, path: Path, ctx: ReportContext) -> None:
        import tempfile

        from kascan.report import renderer

        render = renderer(fmt)
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path())
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                render(self.findings, fh, ctx)
            if not ctx.show_secrets:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            if not self.stream_text:
                from kascan.report.text_report import format_finding

                for f in self.findings:
                    click.echo(format_finding(f, replace(ctx, color=False)), err=True)
            raise KascanError(f"cannot write report {path}: {exc.strerror or exc}") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def run_pipeline(
    opts: Options,
    stats: ScanStats,
    chunks: Callable[[Reporter], Iterator[Chunk]],
    baseline: frozenset[str],
    notes: Callable[[], Sequence[str]] = lambda: (),
) -> int:
    """Compose the stages; whatever happens, write what was found before leaving."""
    from kascan.match import find_candidates
    from kascan.rules import load_rules
    from kascan.suppress import suppress

    rules = load_rules(opts.rules)
    reporter = Reporter(opts, stats)
    error: BaseException | None = None
    try:
        candidates = find_candidates(chunks(reporter), rules, reporter.warn)
        for finding in suppress(candidates, baseline, stats):
            reporter.add(finding)
    except (KascanError, KeyboardInterrupt) as exc:
        error = exc
    reporter.finish(notes())
    if error is not None:
        raise error
    return 1 if reporter.findings else 0


def load_baselines(paths: Sequence[Path]) -> frozenset[str]:
    from kascan.suppress import load_baseline

    out: frozenset[str] = frozenset()
    for p in paths:
        out |= load_baseline(p)
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kascan")
def cli() -> None:
    """kascan finds leaked Kubeadapt API keys (ka_live_…) in files, trees, stdin and git.

    Exit codes: 0 nothing found, 1 keys found, 2 error, 130 interrupted.
    """


def _display_prefix(arg: str, many: bool) -> str:
    if not many:
        return ""
    norm = Path(arg).as_posix()
    if norm in (".", ""):
        return ""
    return norm.rstrip("/") + "/"


@cli.command()
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="PATTERN",
    help="Skip paths matching this gitignore pattern (repeatable).",
)
@click.option("--no-ignore", is_flag=True, help="Scan everything: ignore no ignore file.")
@click.option("--follow-symlinks", is_flag=True, help="Follow symbolic links (loops are skipped).")
@click.option(
    "--stdin-name", default="<stdin>", show_default=True, help="The path to report for stdin."
)
@decoder_options
@common_options
def scan(
    paths: tuple[str, ...],
    no_ignore: bool,
    follow_symlinks: bool,
    stdin_name: str,
    **kw: object,
) -> int:
    """Scan files, directory trees, or standard input ('-') for Kubeadapt API keys."""
    from kascan.config import load_config
    from kascan.sources.archives import DEFAULT_LIMITS
    from kascan.sources.decode import decode_chunks
    from kascan.sources.files import FileRef, iter_stdin, iter_tree, read_file, resolve_roots

    decoders = decoders_from(kw)
    limits = DEFAULT_LIMITS if decoders.archives else None
    opts = _options("scan", **kw)
    roots = resolve_roots(paths or (".",))
    many = len(roots) > 1
    stats = ScanStats()
    early: list[str] = []

    def early_warn(msg: str) -> None:
        early.append(msg)

    configs = {}
    for arg, path in roots:
        if path is not None and path.is_dir():
            configs[arg] = load_config(path, early_warn, opts.config)
    if opts.config is not None and not configs:
        configs[""] = load_config(Path(), early_warn, opts.config)
    baseline_paths = list(opts.baselines)
    for cfg in configs.values():
        if cfg.baseline is not None and cfg.baseline not in baseline_paths:
            baseline_paths.append(cfg.baseline)
    baseline = load_baselines(baseline_paths)
    if not no_ignore or opts.excludes:
        pass

    def chunks(rep: Reporter) -> Iterator[Chunk]:
        for msg in early:
            rep.warn(msg)
        for arg, path in roots:
            if path is None:
                yield from iter_stdin(stats, stdin_name, rep.warn, limits)
            elif path.is_dir():
                from kascan.ignore import Ignorer

                cfg = configs[arg]
                patterns = (*cfg.exclude, *opts.excludes)
                ignorer = (
                    Ignorer.for_root(path, patterns)
                    if not no_ignore
                    else (Ignorer.for_root(path, patterns, use_git=False) if patterns else None)
                )
                if no_ignore and ignorer is not None:
                    # --no-ignore drops ignore files, not the excludes asked for explicitly
                    ignorer = Ignorer(ignorer.top, ignorer.root_rel, patterns, [])
                prefix = _display_prefix(arg, many)
                for ref in iter_tree(path, prefix, ignorer, stats, rep.warn, follow_symlinks):
                    yield from read_file(ref, stats, rep.warn, archives=limits)
            else:
                display = Path(arg).as_posix()
                yield from read_file(
                    FileRef(arg, display), stats, rep.warn, explicit=True, archives=limits
                )

    return run_pipeline(opts, stats, lambda rep: decode_chunks(chunks(rep), decoders), baseline)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line and exit 2 for errors, 130 for ^C, quiet exit on a closed pipe."""
    try:
        rv = cli.main(args=argv, prog_name="kascan", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("kascan: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("kascan: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.message = scrub(exc.message)
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except BrokenPipeError:
        _quiet_pipe()
        sys.exit(0)
    except Exception as exc:  # one line, never a traceback unless --debug
        if _DEBUG:
            import traceback

            click.echo(scrub("".join(traceback.format_exc())), err=True)
        click.echo(f"kascan: internal error: {type(exc).__name__}: {scrub(str(exc))}", err=True)
        sys.exit(2)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_pipe()
    sys.exit(rv if isinstance(rv, int) else 0)


def _quiet_pipe() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _stdout() -> TextIO:
    return sys.stdout
