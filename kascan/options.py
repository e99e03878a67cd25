"""Options, built once at the click boundary into frozen groups that every stage reads.

A command declares the groups it takes with :func:`run_options`; its function then receives one
:class:`RunOptions` (``opts``) instead of two dozen loose keyword arguments. The same decorator
turns an unexpected exception into one line (with the traceback only under ``--debug``), so no
module keeps a global debug flag.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar, cast

import click

from kascan.model import Decoders, scrub
from kascan.report import EXTENSIONS, FORMATS

F = TypeVar("F", bound=Callable[..., object])

FAIL_ON = ("any", "live", "live-or-unknown")


@dataclass(frozen=True, slots=True)
class Output:
    fmt: str
    path: Path | None  # None: stdout


@dataclass(frozen=True, slots=True)
class ReportOptions:
    fmt: str = "text"
    outputs: tuple[Output, ...] = (Output("text", None),)
    show_secrets: bool = False
    quiet: bool = False
    verbose: bool = False  # -v: a line on stderr for each thing skipped or dropped, and why
    color: str = "auto"
    sarif_category: str | None = None
    path_prefix: str = ""


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    enabled: bool = False
    api_url: str = ""  # checked by kascan.verify.resolve_api_url when enabled
    timeout: float = 10.0
    concurrency: int = 8
    max_time: float = 120.0


@dataclass(frozen=True, slots=True)
class ScanOptions:
    rules: tuple[Path, ...] = ()
    excludes: tuple[str, ...] = ()
    baselines: tuple[Path, ...] = ()
    config: Path | None = None
    ignore_baselines: bool = False  # ``kascan baseline update``: a scan that no baseline hides


@dataclass(frozen=True, slots=True)
class RunOptions:
    command: str = "scan"
    report: ReportOptions = field(default_factory=ReportOptions)
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    scan: ScanOptions = field(default_factory=ScanOptions)
    decoders: Decoders = field(default_factory=Decoders)
    fail_on: str = "any"
    debug: bool = False
    strict: bool = False  # --strict: exit 2 when a limit or unreadable file left content unscanned


def parse_output(value: str, default_fmt: str, explicit: bool) -> Output:
    """``[FORMAT:]FILE``: the prefix decides; else an explicit ``--format``; else the extension."""
    fmt, sep, rest = value.partition(":")
    if sep and fmt in FORMATS and rest:
        return Output(fmt, None if rest == "-" else Path(rest))
    if value == "-":
        return Output(default_fmt, None)
    if explicit:
        return Output(default_fmt, Path(value))
    return Output(EXTENSIONS.get(Path(value).suffix.lower(), default_fmt), Path(value))


def plan_outputs(fmt: str, outputs: Sequence[str], explicit: bool = False) -> tuple[Output, ...]:
    """``-o`` files; stdout gets the ``--format`` report unless an ``-o`` already takes it."""
    parsed = [parse_output(o, fmt, explicit) for o in outputs]
    if not parsed:
        return (Output(fmt, None),)
    if any(o.path is None for o in parsed):
        return tuple(parsed)
    if all(o.fmt != fmt for o in parsed):
        parsed.insert(0, Output(fmt, None))
    return tuple(parsed)


# --------------------------------------------------------------------------- click options


def _report_params(merge: bool) -> list[Callable[[F], F]]:
    return [
        click.option(
            "-f",
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default=None,
            help="Report format on stdout (default text); also of every -o FILE without a "
            "FORMAT: prefix.",
        ),
        click.option(
            "-o",
            "--output",
            "outputs",
            multiple=True,
            metavar="[FORMAT:]FILE",
            help="Write a report to FILE (format from FORMAT:, else --format, else the "
            "extension); repeatable; '-' is stdout.",
        ),
        click.option(
            "--show-secrets",
            is_flag=True,
            help="Print full keys in reports (never the default)."
            + (" Only keys the reports have in full." if merge else ""),
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
            "to the repository root when kascan runs in a subdirectory of it.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No summary, warnings or progress."),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            help="One line on stderr for each file skipped, archive member not opened and "
            "candidate dropped, and why (shown with -q too; the report is unchanged).",
        ),
        click.option(
            "--color",
            type=click.Choice(["auto", "always", "never"]),
            default="auto",
            show_default=True,
            help="Colour in the text report.",
        ),
        click.option("--debug", is_flag=True, help="Show tracebacks of internal errors."),
        click.option(
            "--strict",
            is_flag=True,
            help="Exit 2 when the scan is incomplete: a limit (archive depth or size, decoder "
            "hits, regex time) or an unreadable file kept content from being scanned.",
        ),
        click.option(
            "--by-key", is_flag=True, help="Per-key view on stdout (the same as -f keys)."
        ),
    ]


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


def _verify_params() -> list[Callable[[F], F]]:
    return [
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


def _scan_params() -> list[Callable[[F], F]]:
    return [
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
        exclude_option,
    ]


def _decoder_params() -> list[Callable[[F], F]]:
    return [
        click.option(
            "--no-archives",
            is_flag=True,
            help="Do not look inside zip/jar/apk/whl, tar and gzip/bzip2/xz files.",
        ),
        click.option("--no-base64", is_flag=True, help="Do not decode base64-encoded keys."),
        click.option("--no-utf16", is_flag=True, help="Do not look for keys in UTF-16 text."),
        click.option("--no-utf32", is_flag=True, help="Do not look for keys in UTF-32 text."),
        click.option(
            "--no-percent", is_flag=True, help="Do not decode percent-encoded keys (ka%5F...)."
        ),
        click.option(
            "--no-escapes",
            is_flag=True,
            help="Do not decode C/JSON/JavaScript escapes and HTML entities (\\x5f, \\u005f).",
        ),
        click.option("--no-hex", is_flag=True, help="Do not decode hex-encoded keys (6b615f...)."),
    ]


# --------------------------------------------------------------------------- building the groups


def _report(kw: dict[str, object]) -> ReportOptions:
    fmt_given = cast("str | None", kw.pop("fmt", None))
    by_key = bool(kw.pop("by_key", False))
    if by_key and fmt_given not in (None, "keys"):
        raise click.UsageError("--by-key is -f keys; give one or the other")
    fmt = fmt_given or ("keys" if by_key else "text")
    outputs = cast("Sequence[str]", kw.pop("outputs", ()) or ())
    planned = plan_outputs(fmt, outputs, explicit=fmt_given is not None)
    if any(o.path is not None for o in planned):
        from kascan.output import check_target

        for o in planned:  # a planted FIFO or device is refused before anything is scanned
            if o.path is not None:
                check_target(o.path)
    return ReportOptions(
        fmt=fmt,
        # an explicit --format is also the format of every -o FILE without a prefix; --by-key
        # is about stdout only
        outputs=planned,
        show_secrets=bool(kw.pop("show_secrets", False)),
        quiet=bool(kw.pop("quiet", False)),
        verbose=bool(kw.pop("verbose", False)),
        color=str(kw.pop("color", None) or "auto"),
        sarif_category=cast("str | None", kw.pop("sarif_category", None)) or None,
        path_prefix=str(kw.pop("path_prefix", None) or ""),
    )


def _verify(kw: dict[str, object], recorded: bool = False) -> tuple[VerifyOptions, str]:
    """``recorded``: the findings carry the statuses of an earlier run (``merge``), so
    ``--fail-on`` needs no ``--verify``."""
    enabled = bool(kw.pop("verify", False))
    fail_on = str(kw.pop("fail_on", None) or "any")
    api_url = cast("str | None", kw.pop("api_url", None))
    opts = VerifyOptions(
        enabled=enabled,
        timeout=float(cast("float", kw.pop("verify_timeout", None) or 10.0)),
        concurrency=int(cast("int", kw.pop("verify_concurrency", None) or 8)),
        max_time=float(cast("float", kw.pop("verify_max_time", None) or 120.0)),
    )
    if fail_on != "any" and not enabled and not recorded:
        raise click.UsageError(
            f"--fail-on {fail_on} needs --verify (without it kascan sends nothing to the API)"
        )
    if enabled:
        from kascan.verify import resolve_api_url

        opts = replace(opts, api_url=resolve_api_url(api_url or ""))
    return opts, fail_on


def _scan(kw: dict[str, object]) -> ScanOptions:
    return ScanOptions(
        rules=tuple(cast("Sequence[Path]", kw.pop("rules", ()) or ())),
        excludes=tuple(cast("Sequence[str]", kw.pop("excludes", ()) or ())),
        baselines=tuple(cast("Sequence[Path]", kw.pop("baselines", ()) or ())),
        config=cast("Path | None", kw.pop("config", None)),
        ignore_baselines=bool(kw.pop("ignore_baselines", False)),
    )


def _decoders(kw: dict[str, object]) -> Decoders:
    return Decoders(
        archives=not kw.pop("no_archives", False),
        base64=not kw.pop("no_base64", False),
        utf16=not kw.pop("no_utf16", False),
        utf32=not kw.pop("no_utf32", False),
        percent=not kw.pop("no_percent", False),
        escapes=not kw.pop("no_escapes", False),
        hex=not kw.pop("no_hex", False),
    )


Group = str  # "report", "verify", "scan" (or only "baseline"), "decoders"


# how `--help` groups the options, in this order (a command's own options come first)
HELP_SECTIONS = {
    "scan": "What to scan",
    "decoders": "What to look inside",
    "report": "Reports",
    "verify": "Verification and exit status",
}


class GroupedCommand(click.Command):
    """A command whose ``--help`` lists its options by group, then its examples."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"Options": []}
        for label in HELP_SECTIONS.values():
            sections[label] = []
        for param in self.get_params(ctx):
            if isinstance(param, click.Argument):
                continue
            row = param.get_help_record(ctx)
            if row is not None:
                label = HELP_SECTIONS.get(getattr(param, "kascan_group", ""), "Options")
                sections[label].append(row)
        for label, rows in sections.items():
            if rows:
                with formatter.section(label):
                    formatter.write_dl(rows)


def run_options(
    command: str, groups: Sequence[Group] = ("report", "verify", "scan", "decoders")
) -> Callable[[F], F]:
    """Declare the option groups of ``command``; the function receives ``opts: RunOptions``."""

    def deco(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: object, **kw: object) -> object:
            debug = bool(kw.pop("debug", False))
            strict = bool(kw.pop("strict", False))
            report = _report(kw) if "report" in groups else ReportOptions()
            verify, fail_on = (
                _verify(kw, recorded=command == "merge")
                if "verify" in groups
                else (VerifyOptions(), "any")
            )
            scan = _scan(kw) if {"scan", "baseline"} & set(groups) else ScanOptions()
            decoders = _decoders(kw) if "decoders" in groups else Decoders()
            kw["opts"] = RunOptions(command, report, verify, scan, decoders, fail_on, debug, strict)
            try:
                return f(*args, **kw)
            except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
                raise
            except Exception:
                if debug:
                    import traceback

                    from kascan.output import escape

                    for line in traceback.format_exc().splitlines():
                        click.echo(escape(scrub(line)), err=True)
                raise

        params: list[tuple[str, Callable[[F], F]]] = []
        if "scan" in groups:
            params += [("scan", p) for p in _scan_params()]
        elif "baseline" in groups:
            params += [("scan", p) for p in _scan_params()[1:2]]
        if "decoders" in groups:
            params += [("decoders", p) for p in _decoder_params()]
        if "report" in groups:
            params += [("report", p) for p in _report_params(merge=command == "merge")]
        if "verify" in groups:
            params += [("verify", p) for p in _verify_params()]
        out = cast("F", wrapper)
        for group, p in reversed(params):
            out = p(out)
            made = getattr(out, "__click_params__", [])
            if made:
                made[-1].kascan_group = group  # the option just added: its --help section
        return out

    return deco
