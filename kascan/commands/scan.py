"""``kascan scan``: files, directory trees and standard input."""

from __future__ import annotations

from pathlib import Path

import click

from kascan.options import GroupedCommand, RunOptions, run_options


def _display_prefix(arg: str) -> str:
    """What a tree's paths start with: the argument as given (``proj/``), so a path can be
    opened from where kascan was run, whether one root was named or many (as ripgrep does)."""
    norm = Path(arg).as_posix()
    if norm in (".", ""):
        return ""
    return norm.rstrip("/") + "/"


@click.command(
    cls=GroupedCommand,
    epilog="""\b
Examples:
  kascan scan                           the current directory (ignore files honoured)
  kascan scan src/ build/app.apk        files and trees; archives are opened
  kubectl logs -f deploy/api | kascan scan -      standard input, as it arrives
  kascan scan . -f sarif -o kascan.sarif          a report for code scanning
  kascan scan . --verify --fail-on live           fail only on keys that still work
""",
)
@click.argument("paths", nargs=-1, metavar="[PATH]...")
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
    help="Processes that read and match a tree, threads that read one big file "
    "[default: the number of cores; 1: no workers, one thread].",
)
@run_options("scan")
def scan(
    paths: tuple[str, ...],
    no_ignore: bool,
    follow_symlinks: bool,
    stdin_name: str,
    jobs: int | None,
    opts: RunOptions,
) -> int:
    """Scan files, directory trees, or standard input ('-') for Kubeadapt API keys."""
    from kascan import pipeline
    from kascan.config import load_config
    from kascan.parallel import default_jobs
    from kascan.sources.base import Source
    from kascan.sources.files import FileSource, StdinSource, TreeWalk, resolve_roots
    from kascan.stats import ScanStats

    roots = resolve_roots(paths or (".",))
    stats = ScanStats()
    early: list[str] = []
    sources: list[Source] = []
    shared_files: tuple[Path, ...] = ()
    if opts.scan.config is not None and not any(p is not None and p.is_dir() for _, p in roots):
        cfg = load_config(Path(), early.append, opts.scan.config)
        if cfg.baseline is not None:
            shared_files = (cfg.baseline,)
    for arg, path in roots:
        src: Source
        if path is None:
            src = StdinSource(stdin_name)
        elif path.is_dir():
            cfg = load_config(path, early.append, opts.scan.config)
            excludes = opts.scan.excludes if no_ignore else (*cfg.exclude, *opts.scan.excludes)
            src = TreeWalk(
                path,
                _display_prefix(arg),
                excludes,
                stats,
                no_ignore=no_ignore,
                follow_symlinks=follow_symlinks,
            )
            if cfg.baseline is not None:
                src.baseline_files = (cfg.baseline,)
        else:
            src = FileSource(arg, Path(arg).as_posix())
        src.baseline_files += shared_files
        sources.append(src)
    return pipeline.run(sources, opts, stats=stats, jobs=jobs or default_jobs(), early=early)
