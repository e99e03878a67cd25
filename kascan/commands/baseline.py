"""``kascan baseline update FILE [PATH]...`` and ``kascan baseline audit FILE``.

A baseline is a kascan JSON report whose entries never get lost: ``update`` merges a new scan into
it (``--prune`` drops the keys no longer found), ``audit`` records per key why it is there
(``"triage": {"state": …, "reason": …, "date": …}`` on each of its entries). A scan with
``--baseline FILE`` leaves out every key except the ``untriaged`` ones (see ``kascan.suppress``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import click

from kascan.baselines import (
    Entry,
    entries_of,
    entry_fingerprint,
    merge_entries,
    read_baseline,
    write_baseline,
)
from kascan.errors import KascanError
from kascan.model import Secret
from kascan.suppress import TRIAGE_STATES, triage_state

MARKS = TRIAGE_STATES[1:]  # what audit may set (untriaged only resets)
# options of ``kascan scan`` that make no sense for a baseline (it is always a redacted JSON file)
_NOT_FOR_UPDATE = frozenset(
    [
        "fmt",
        "outputs",
        "baselines",
        "show_secrets",
        "sarif_category",
        "path_prefix",
        "color",
        "fail_on",
    ]
)


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _printable(text: object) -> str:
    """A string from the file (attacker-writable) made safe for a terminal: one line, no escapes."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


@dataclass
class Key:
    """The entries of one key (one fingerprint)."""

    fingerprint: str
    entries: list[Entry]

    @property
    def state(self) -> str:
        states = [triage_state(e) or "baselined" for e in self.entries]
        return next((s for s in states if s not in ("untriaged", "baselined")), states[0])

    @property
    def triage(self) -> dict[str, object]:
        for e in self.entries:
            t = e.get("triage")
            if isinstance(t, dict) and t.get("state") == self.state:
                return cast("dict[str, object]", t)
        return {}

    @property
    def shown(self) -> str:
        secret = self.entries[0].get("secret")
        return Secret.from_report(
            secret if isinstance(secret, str) else "", self.fingerprint
        ).redacted


def group_keys(entries: Iterable[Entry]) -> list[Key]:
    keys: dict[str, Key] = {}
    for e in entries:
        fp = entry_fingerprint(e)
        keys.setdefault(fp, Key(fp, [])).entries.append(e)
    return list(keys.values())


def _where(e: Entry) -> str:
    repo, path = e.get("repo"), e.get("path")
    where = f"{repo}:{path}" if repo else str(path)
    text = f"{where}:{e.get('line')}:{e.get('column')}"
    commit = e.get("commit")
    if isinstance(commit, str) and commit:
        text += f"  commit {commit[:12]} by {e.get('author') or '?'} on {e.get('date') or '?'}"
    return _printable(text)


def _short(fp: str) -> str:
    return fp[: len("sha256:") + 12]


def _counts(keys: Sequence[Key]) -> str:
    from collections import Counter

    c = Counter(k.state for k in keys)
    order = ("untriaged", *MARKS, "baselined")
    return ", ".join(f"{c[s]} {s}" for s in order if c[s])


def _find_key(keys: Sequence[Key], given: str, path: Path) -> Key:
    want = given.strip().lower()
    if not want.startswith("sha256:"):
        want = "sha256:" + want
    if len(want) < len("sha256:") + 8:
        raise click.UsageError(f"fingerprint {given!r} is too short: give at least 8 hex digits")
    hits = [k for k in keys if k.fingerprint.startswith(want)]
    if not hits:
        raise KascanError(f"no key in {path} has the fingerprint {_printable(given)}")
    if len(hits) > 1:
        raise KascanError(
            f"fingerprint {_printable(given)} matches {len(hits)} keys in {path}: give more of it"
        )
    return hits[0]


def _clean_reason(reason: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in reason).split())


def set_state(key: Key, state: str, reason: str) -> None:
    from datetime import datetime, timezone

    if state == "untriaged":
        record: dict[str, object] = {"state": state}
    else:
        date = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        record = {"state": state, "reason": reason, "date": date.replace("+00:00", "Z")}
    for e in key.entries:
        e["triage"] = dict(record)


@click.group()
def baseline() -> None:
    """Keep a baseline of known keys, and record why each one is there.

    \b
    kascan baseline update .kascan-baseline.json          # create, or merge a new scan of .
    kascan baseline audit .kascan-baseline.json           # mark each new key on a terminal
    kascan baseline audit B --mark sha256:1a2b3c4d=false-positive --reason "test fixture"
    kascan baseline audit B --list
    kascan scan . --baseline .kascan-baseline.json        # reports only untriaged and new keys
    """


@baseline.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--prune", is_flag=True, help="Drop the entries of keys that this scan no longer finds."
)
def update(file: Path, prune: bool, **kw: object) -> int:
    """Create FILE, or merge a scan of PATH (default .) into it: no entry is ever dropped,
    except with --prune. New keys are 'untriaged' until `kascan baseline audit` marks them.
    The options of `kascan scan` apply."""
    import tempfile

    from kascan.commands.scan import scan

    old_doc: dict[str, object] | None = None
    old: list[Entry] = []
    if file.exists():
        old_doc, old = read_baseline(file)
    ctx = click.get_current_context()
    with tempfile.TemporaryDirectory(prefix="kascan-baseline-") as tmpdir:
        report = Path(tmpdir) / "scan.json"
        kw.update(fmt="json", outputs=(f"json:{report}",), ignore_baselines=True)
        ctx.invoke(scan, **kw)
        from kascan.reportio import read_report

        _, doc = read_report(report)
    new = entries_of(doc, report)
    merged = merge_entries(old, new, prune=prune, triaged=True)
    out = dict(old_doc or {})
    out.update(doc)  # the latest tool version and summary
    out["command"] = "baseline"
    out["findings"] = merged.entries
    write_baseline(file, out)
    if not kw.get("quiet"):
        keys = group_keys(merged.entries)
        untriaged = sum(k.state == "untriaged" for k in keys)
        n_entries = _n(len(merged.entries), "entry", "entries")
        line = (
            f"kascan: baseline {file}: {_n(len(keys), 'key')} ({n_entries}): "
            f"{merged.added} added, {merged.pruned} pruned"
        )
        if untriaged:
            line += f"; {untriaged} untriaged (still reported): kascan baseline audit {file}"
        click.echo(_printable(line), err=True)
    return 0


@baseline.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--mark",
    "marks",
    multiple=True,
    metavar="FINGERPRINT=STATE",
    help="Mark a key (its fingerprint, or 8+ hex digits of it) false-positive, accepted, "
    "revoked, or untriaged again (repeatable).",
)
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    metavar="TEXT",
    help="Why: one for all the --mark options, or one per --mark.",
)
@click.option("--list", "list_", is_flag=True, help="Print the keys, their states and reasons.")
@click.option("--all", "all_", is_flag=True, help="On a terminal: also revisit triaged keys.")
def audit(
    file: Path, marks: tuple[str, ...], reasons: tuple[str, ...], list_: bool, all_: bool
) -> int:
    """Mark the keys of baseline FILE false-positive, accepted or revoked, with a reason.

    On a terminal, without --mark or --list, goes through the untriaged keys one by one. Marked
    keys are left out of a scan with --baseline FILE; untriaged ones are still reported.
    """
    doc, entries = read_baseline(file)
    keys = group_keys(entries)
    if marks:
        _apply_marks(file, keys, marks, reasons)
        doc["findings"] = entries
        write_baseline(file, doc)
        click.echo(f"kascan: baseline {file}: marked {_n(len(marks), 'key')}.", err=True)
    elif reasons:
        raise click.UsageError("--reason goes with --mark")
    if list_:
        _list(file, keys)
        return 0
    if marks:
        return 0
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise KascanError(
            "kascan baseline audit needs a terminal; without one use "
            "--mark FINGERPRINT=STATE --reason TEXT, or --list"
        )
    _interactive(file, doc, entries, keys, all_)
    return 0


def _apply_marks(
    file: Path, keys: Sequence[Key], marks: Sequence[str], reasons: Sequence[str]
) -> None:
    if len(reasons) not in (0, 1, len(marks)):
        raise click.UsageError("give one --reason for all the --mark options, or one per --mark")
    for i, mark in enumerate(marks):
        given, sep, state = mark.rpartition("=")
        state = state.strip()
        if not sep or state not in TRIAGE_STATES:
            raise click.UsageError(
                f"--mark {_printable(mark)!r}: expected FINGERPRINT=STATE, STATE one of "
                + ", ".join(TRIAGE_STATES)
            )
        reason = _clean_reason(reasons[i] if len(reasons) > 1 else (reasons or [""])[0])
        if state != "untriaged" and not reason:
            raise click.UsageError(f"--mark ...={state} needs a --reason (why is the key there?)")
        set_state(_find_key(keys, given, file), state, reason)


def _list(file: Path, keys: Sequence[Key]) -> None:
    click.echo(f"{file}: {_n(len(keys), 'key')}" + (f": {_counts(keys)}" if keys else ""))
    for k in keys:
        t = k.triage
        click.echo(f"{_short(k.fingerprint)}  {k.state:<14}  {k.shown}")
        for e in k.entries[:5]:
            click.echo(f"    {_where(e)}")
        if len(k.entries) > 5:
            click.echo(f"    … and {len(k.entries) - 5} more")
        if t.get("reason"):
            click.echo(f"    reason: {_printable(t['reason'])} ({_printable(t.get('date', '?'))})")


_CHOICES = {"f": "false-positive", "a": "accepted", "r": "revoked", "s": "", "q": ""}


def _interactive(
    file: Path, doc: dict[str, object], entries: list[Entry], keys: Sequence[Key], all_: bool
) -> None:
    todo = [k for k in keys if all_ or k.state == "untriaged"]
    if not todo:
        click.echo(f"{file}: no untriaged keys ({_counts(keys) or 'empty'}); --all revisits them.")
        return
    marked = 0
    for i, k in enumerate(todo, 1):
        click.echo(f"\n[{i}/{len(todo)}] {k.shown}  {_short(k.fingerprint)}  {k.state}")
        for e in k.entries[:10]:
            click.echo(f"    {_where(e)}")
        if len(k.entries) > 10:
            click.echo(f"    … and {len(k.entries) - 10} more")
        if k.triage.get("reason"):
            click.echo(f"    reason: {_printable(k.triage['reason'])}")
        while True:
            answer = click.prompt(
                "(f)alse positive, (a)ccepted, (r)evoked, (s)kip, (q)uit",
                default="s",
                show_default=True,
            )
            answer = answer.strip().lower()[:1]
            if answer in _CHOICES:
                break
            click.echo("    answer f, a, r, s or q")
        if answer == "q":
            break
        if answer == "s":
            continue
        reason = ""
        while not reason:
            reason = _clean_reason(click.prompt("    reason"))
        set_state(k, _CHOICES[answer], reason)
        doc["findings"] = entries
        write_baseline(file, doc)  # after each answer: an interrupted audit loses nothing
        marked += 1
    click.echo(f"\n{file}: marked {_n(marked, 'key')}; {_counts(keys)}.")


def _update_params() -> list[click.Parameter]:
    from kascan.commands.scan import scan

    return [p for p in scan.params if p.name not in _NOT_FOR_UPDATE]


update.params[1:1] = _update_params()  # the scan's PATH... and options, after FILE
