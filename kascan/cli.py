"""The command line: builds the pipeline (sources -> match -> suppress -> report) and maps every
error to one line and an exit code (0 clean, 1 findings, 2 error, 130 interrupted)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import click

from kascan import __version__
from kascan.errors import KascanError
from kascan.model import STATUSES, Candidate, Chunk, Finding, scrub
from kascan.output import escape
from kascan.report import EXTENSIONS, FORMATS, ReportContext
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.rules import RuleSet
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
    verify: bool = False
    api_url: str = ""  # checked by kascan.verify.resolve_api_url when --verify
    verify_timeout: float = 10.0
    verify_concurrency: int = 8
    verify_max_time: float = 120.0
    fail_on: str = "any"
    sarif_category: str | None = None
    path_prefix: str = ""


def parse_output(value: str, default_fmt: str) -> Output:
    fmt, sep, rest = value.partition(":")
    if sep and fmt in FORMATS and rest:
        return Output(fmt, None if rest == "-" else Path(rest))
    if value == "-":
        return Output(default_fmt, None)
    ext = Path(value).suffix.lower()
    return Output(EXTENSIONS.get(ext, default_fmt), Path(value))


def plan_outputs(fmt: str, outputs: Sequence[str]) -> tuple[Output, ...]:
    """``-o`` files; stdout gets the ``--format`` report unless an ``-o`` already takes it."""
    parsed = [parse_output(o, fmt) for o in outputs]
    if not parsed:
        return (Output(fmt, None),)
    if any(o.path is None for o in parsed):
        return tuple(parsed)
    if all(o.fmt != fmt for o in parsed):
        parsed.insert(0, Output(fmt, None))
    return tuple(parsed)


FAIL_ON = ("any", "live", "live-or-unknown")


def api_url_option(f: F) -> F:
    return click.option(
        "--api-url",
        envvar="KASCAN_API_URL",
        show_envvar=True,
        metavar="URL",
        help="Kubeadapt API to verify keys against (default https://public-api.kubeadapt.io). "
        "https:// only, or http:// to a loopback address. Never read from a config file.",
    )(f)


def verify_timeout_option(f: F) -> F:
    return click.option(
        "--verify-timeout",
        type=click.FloatRange(0.05, 120),
        default=10.0,
        show_default=True,
        metavar="SECONDS",
        help="Timeout of one verification request.",
    )(f)


exclude_option = click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="PATTERN",
    help="Skip paths matching this gitignore pattern (repeatable).",
)


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
        click.option(
            "--sarif-category",
            envvar="KASCAN_SARIF_CATEGORY",
            metavar="ID",
            help="SARIF runAutomationDetails.id: the code scanning category of this run "
            "(env KASCAN_SARIF_CATEGORY).",
        ),
        click.option(
            "--path-prefix",
            metavar="PREFIX",
            default="",
            help="Prepend PREFIX to paths in SARIF and GitHub annotations, so they are relative "
            "to the repository root when a subdirectory is scanned.",
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
        click.option(
            "--verify",
            is_flag=True,
            help="Ask the Kubeadapt API whether each distinct key found still works (sends each "
            "key once, over HTTPS, in an Authorization header). Without it kascan makes no "
            "network request at all.",
        ),
        api_url_option,
        verify_timeout_option,
        click.option(
            "--verify-concurrency",
            type=click.IntRange(1, 32),
            default=8,
            show_default=True,
            metavar="N",
            help="Keys checked at once, over one connection pool.",
        ),
        click.option(
            "--verify-max-time",
            type=click.FloatRange(1, 3600),
            default=120.0,
            show_default=True,
            metavar="SECONDS",
            help="Overall bound on verification; keys not checked by then are 'unknown'.",
        ),
        click.option(
            "--fail-on",
            type=click.Choice(FAIL_ON),
            default="any",
            show_default=True,
            help="Exit 1 on: any finding; only live or live-limited keys (needs --verify); "
            "or any key not proven inactive (live, live-limited, unknown; needs --verify).",
        ),
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
    verify = bool(kw.get("verify"))
    fail_on = str(kw.get("fail_on") or "any")
    if fail_on != "any" and not verify:
        raise click.UsageError(
            f"--fail-on {fail_on} needs --verify (without it kascan sends nothing to the API)"
        )
    api_url = ""
    if verify:
        from kascan.verify import resolve_api_url

        api_url = resolve_api_url(str(kw.get("api_url") or ""))
    return Options(
        rules=tuple(kw.get("rules") or ()),  # type: ignore[arg-type]
        excludes=tuple(kw.get("excludes") or ()),  # type: ignore[arg-type]
        baselines=tuple(kw.get("baselines") or ()),  # type: ignore[arg-type]
        config=kw.get("config"),  # type: ignore[arg-type]
        fmt=fmt,
        outputs=plan_outputs(fmt, list(outputs)),  # type: ignore[call-overload]
        show_secrets=bool(kw.get("show_secrets")),
        quiet=bool(kw.get("quiet")),
        color=str(kw.get("color") or "auto"),
        command=command,
        verify=verify,
        api_url=api_url,
        verify_timeout=float(kw.get("verify_timeout") or 10.0),  # type: ignore[arg-type]
        verify_concurrency=int(kw.get("verify_concurrency") or 8),  # type: ignore[call-overload]
        verify_max_time=float(kw.get("verify_max_time") or 120.0),  # type: ignore[arg-type]
        fail_on=fail_on,
        sarif_category=str(kw["sarif_category"]) if kw.get("sarif_category") else None,
        path_prefix=str(kw.get("path_prefix") or ""),
    )


class Reporter:
    """Streams text findings to the terminal as they are found; writes every report at the end."""

    def __init__(self, opts: Options, stats: ScanStats) -> None:
        self.opts = opts
        self.stats = stats
        self.findings: list[Finding] = []
        self._warned: set[str] = set()
        self.stream_text = any(o.path is None and o.fmt == "text" for o in opts.outputs)
        color = opts.color == "always" or (
            opts.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
        )
        self.ctx = ReportContext(
            stats,
            show_secrets=opts.show_secrets,
            color=color,
            command=opts.command,
            verified=opts.verify,
            sarif_category=opts.sarif_category,
            path_prefix=opts.path_prefix,
        )

    def warn(self, message: str) -> None:
        """Each distinct warning once (workers may each meet the same timed-out rule)."""
        if message in self._warned:
            return
        self._warned.add(message)
        self.stats.warnings += 1
        if not self.opts.quiet:
            click.echo(f"kascan: warning: {escape(scrub(message))}", err=True)

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
        from kascan.output import write_report
        from kascan.report import renderer
        from kascan.report.text_report import format_finding

        render = renderer(fmt)

        def lost() -> None:  # a failed write: the findings still reach stderr
            for f in [] if self.stream_text else self.findings:
                click.echo(format_finding(f, ctx), err=True)

        write_report(path, lambda fh: render(self.findings, fh, ctx), ctx.show_secrets, lost)


def run_pipeline(
    opts: Options,
    stats: ScanStats,
    chunks: Callable[[Reporter], Iterator[Chunk]],
    baseline: frozenset[str],
    notes: Callable[[], Sequence[str]] = lambda: (),
    matched: Callable[[Reporter, RuleSet], Iterator[Candidate]] | None = None,
) -> int:
    """Compose the stages; whatever happens, write what was found before leaving.

    ``matched`` replaces the match stage for sources that must see candidates (git history
    attributes each to the commit that introduced it)."""
    from kascan.match import find_candidates
    from kascan.rules import load_rules
    from kascan.suppress import suppress

    rules = load_rules(opts.rules)
    reporter = Reporter(opts, stats)
    reporter.ctx = replace(reporter.ctx, rules=rules.rules)
    error: BaseException | None = None
    try:
        candidates = (
            matched(reporter, rules)
            if matched is not None
            else find_candidates(chunks(reporter), rules, reporter.warn)
        )
        findings: Iterator[Finding] = suppress(candidates, baseline, stats)
        if opts.verify:
            from kascan.verify import verify_findings

            findings = verify_findings(
                findings,
                opts.api_url,
                timeout=opts.verify_timeout,
                concurrency=opts.verify_concurrency,
                budget=opts.verify_max_time,
            )
        for finding in findings:
            reporter.add(finding)
    except (KascanError, KeyboardInterrupt) as exc:
        error = exc
    reporter.finish([*notes(), *verification_notes(opts, reporter.findings)])
    if error is not None:
        raise error
    return exit_status(reporter.findings, opts.fail_on)


def exit_status(findings: Sequence[Finding], fail_on: str) -> int:
    """1 when a finding counts under ``--fail-on``, else 0."""
    if fail_on == "any":
        return 1 if findings else 0
    failing = {"live", "live-limited"}
    if fail_on == "live-or-unknown":
        failing |= {"unknown", "unchecked"}
    return 1 if any(f.verification.status in failing for f in findings) else 0


def verification_notes(opts: Options, findings: Sequence[Finding]) -> list[str]:
    if not opts.verify:
        return []
    from collections import Counter

    by_key = {f.fingerprint: f.verification.status for f in findings}
    counts = Counter(by_key.values())
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    notes = [
        f"verified {len(by_key)} distinct keys against {opts.api_url}"
        + (f": {parts}." if parts else ".")
    ]
    if opts.fail_on != "any":
        notes.append(f"exit status counts only keys that are {opts.fail_on} (--fail-on).")
    return notes


def load_baselines(paths: Sequence[Path]) -> frozenset[str]:
    from kascan.suppress import load_baseline

    out: frozenset[str] = frozenset()
    for p in paths:
        out |= load_baseline(p)
    return out


class _LazyGroup(click.Group):
    """Commands defined in ``kascan.commands.<name>`` are imported only when used (fast start)."""

    lazy: ClassVar[dict[str, str]] = {
        "git": "kascan.commands.git",
        "merge": "kascan.commands.merge",
        "repos": "kascan.commands.repos",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            import importlib

            cmd = getattr(importlib.import_module(self.lazy[name]), name)
            assert isinstance(cmd, click.Command)
            self.add_command(cmd, name)
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
@exclude_option
@click.option("--no-ignore", is_flag=True, help="Scan everything: ignore no ignore file.")
@click.option("--follow-symlinks", is_flag=True, help="Follow symbolic links (loops are skipped).")
@click.option(
    "--stdin-name", default="<stdin>", show_default=True, help="The path to report for stdin."
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that read and match a tree [default: the number of cores; 1: no workers].",
)
@decoder_options
@common_options
def scan(
    paths: tuple[str, ...],
    no_ignore: bool,
    follow_symlinks: bool,
    stdin_name: str,
    jobs: int | None,
    **kw: object,
) -> int:
    """Scan files, directory trees, or standard input ('-') for Kubeadapt API keys."""
    from kascan.config import load_config
    from kascan.sources.archives import DEFAULT_LIMITS
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

    def candidates(rep: Reporter, rules: RuleSet) -> Iterator[Candidate]:
        from kascan.match import find_candidates
        from kascan.parallel import TreeScanner, default_jobs

        for msg in early:
            rep.warn(msg)
        with TreeScanner(rules, stats, rep.warn, jobs or default_jobs(), decoders) as trees:
            for arg, path in roots:
                if path is not None and path.is_dir():
                    yield from trees.scan(tree_walk(arg, path))
                else:
                    yield from find_candidates(file_chunks(arg, path, rep), rules, rep.warn)

    def file_chunks(arg: str, path: Path | None, rep: Reporter) -> Iterator[Chunk]:
        from kascan.sources.decode import decode_chunks

        if path is None:
            raw = iter_stdin(stats, stdin_name, rep.warn, limits)
        else:
            ref = FileRef(arg, Path(arg).as_posix())
            raw = read_file(ref, stats, rep.warn, explicit=True, archives=limits)
        yield from decode_chunks(raw, decoders)

    def tree_walk(arg: str, path: Path) -> Callable[[Callable[[str], None]], Iterator[FileRef]]:
        def walk(warn: Callable[[str], None]) -> Iterator[FileRef]:
            from kascan.ignore import Ignorer

            cfg = configs[arg]
            if no_ignore:  # only the excludes asked for on the command line
                ignorer = (
                    Ignorer.for_root(path, opts.excludes, use_git=False) if opts.excludes else None
                )
            else:
                ignorer = Ignorer.for_root(path, (*cfg.exclude, *opts.excludes))
            prefix = _display_prefix(arg, many)
            yield from iter_tree(path, prefix, ignorer, stats, warn, follow_symlinks)

        return walk

    def no_chunks(rep: Reporter) -> Iterator[Chunk]:
        return iter(())

    return run_pipeline(opts, stats, no_chunks, baseline, matched=candidates)


@cli.command("verify")
@click.argument("key", required=False, metavar="[KEY]")
@api_url_option
@verify_timeout_option
def verify_command(key: str | None, api_url: str | None, verify_timeout: float) -> int:
    """Check whether one key still works. Reads it from stdin when KEY is not given (so it
    stays out of shell history).

    Exit codes: 1 live or live-limited (revoke it now), 0 inactive, 2 unknown (could not tell)
    or an error.
    """
    from kascan.verify import MEANING, Verifier, VerifySettings, is_key, resolve_api_url

    url = resolve_api_url(api_url)
    if key is None:
        if sys.stdin.isatty():
            key = click.prompt("Kubeadapt API key", hide_input=True, err=True)
        else:
            key = sys.stdin.buffer.read(4097).decode("utf-8", "replace")
    value = (key or "").strip()
    if not is_key(value):
        raise KascanError(
            "not a Kubeadapt API key: expected ka_" + "live_ and 32 letters or digits "
            f"(got {len(value)} characters)"
        )
    from kascan.model import Secret

    verifier = Verifier(VerifySettings(url, timeout=verify_timeout, concurrency=1))
    try:
        v = verifier.check(Secret(value))
    finally:
        verifier.close()
    click.echo(f"{v.status}: {MEANING[v.status]}")
    if v.organization or v.organization_id:
        org = v.organization or ""
        if v.organization_id:
            org = f"{org} (id {v.organization_id})".strip()
        click.echo(f"organization: {org}")
    if v.detail:
        click.echo(f"detail: {v.detail}")
    if v.status in ("live", "live-limited"):
        return 1
    return 0 if v.status == "inactive" else 2


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
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f"Try '{exc.ctx.command_path} {exc.ctx.help_option_names[0]}' for help.\n"
            click.echo(exc.ctx.get_usage() + "\n" + hint, err=True)
        click.echo(f"Error: {escape(scrub(exc.format_message()))}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except BrokenPipeError:
        _quiet_pipe()
        sys.exit(0)
    except Exception as exc:  # one line, never a traceback unless --debug
        if _DEBUG:
            import traceback

            for line in traceback.format_exc().splitlines():
                click.echo(escape(scrub(line)), err=True)
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
