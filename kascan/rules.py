"""Rules as data, in gitleaks' TOML shape: ``[[rules]]`` with ``id``, ``regex``, ``secretGroup``,
``entropy``, ``keywords``, optional ``path`` and ``[[rules.allowlists]]``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from kascan.errors import KascanError

if TYPE_CHECKING:
    from regex import Pattern

BUILTIN_ID = "kubeadapt-api-key"
BUILTIN_PREFIX = "ka_live_"
BUILTIN_BODY_LEN = 32
BUILTIN_REGEX = r"(?:^|[^A-Za-z0-9_])(ka_live_[A-Za-z0-9]{32})(?:[^A-Za-z0-9]|$)"

RegexTarget = Literal["secret", "match", "line"]
REGEX_TIMEOUT = 2.0  # seconds for one search by any user regex (a rule's regex, path, allowlist)

Warn = Callable[[str], None]

_compiled: dict[str, Pattern[str]] = {}
_timed_out: set[str] = set()  # patterns that timed out once: not trusted again in this process


def _no_warn(_: str) -> None:
    pass


def compile_pattern(pattern: str) -> Pattern[str]:
    """Compile a gitleaks (RE2) pattern with the ``regex`` module, ASCII classes like RE2."""
    got = _compiled.get(pattern)
    if got is None:
        import regex as _regex

        translated = pattern.replace(r"\z", r"\Z")
        got = _regex.compile(translated, _regex.ASCII | _regex.VERSION0)
        _compiled[pattern] = got
    return got


def timed_search(pattern: str, text: str, what: str, warn: Warn) -> bool | None:
    """Whether ``pattern`` matches somewhere in ``text``, within :data:`REGEX_TIMEOUT`; None if
    it timed out, now or earlier in this process (a pattern that backtracks forever on one input
    is not run again: one warning, and each caller keeps what the pattern cannot decide)."""
    if pattern in _timed_out:
        return None
    try:
        return compile_pattern(pattern).search(text, timeout=REGEX_TIMEOUT) is not None
    except TimeoutError:
        _timed_out.add(pattern)
        shown = pattern if len(pattern) <= 60 else pattern[:57] + "..."
        warn(
            f"{what} {shown!r} timed out after {REGEX_TIMEOUT:g}s; not used for the rest of "
            "the scan (what it would have decided is kept as a finding)"
        )
        return None


@dataclass(frozen=True, slots=True)
class Allowlist:
    regexes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    stopwords: tuple[str, ...] = ()
    commits: tuple[str, ...] = ()
    regex_target: RegexTarget = "secret"
    condition: Literal["OR", "AND"] = "OR"
    description: str = field(default="", compare=False)  # what -v calls it

    def allows(
        self,
        secret: str,
        match: str,
        line: str,
        path: str,
        commit: str | None,
        warn: Warn = _no_warn,
    ) -> bool:
        """Whether this allowlist drops the candidate. A regex that times out allows nothing:
        the candidate is kept (and the regex reported once)."""
        checks: list[bool] = []
        if self.commits:
            checks.append(commit is not None and any(commit.startswith(c) for c in self.commits))
        if self.paths:
            what = "allowlist path regex"
            checks.append(any(timed_search(p, path, what, warn) is True for p in self.paths))
        if self.regexes:
            target = {"secret": secret, "match": match, "line": line}[self.regex_target]
            what = "allowlist regex"
            checks.append(any(timed_search(r, target, what, warn) is True for r in self.regexes))
        if self.stopwords:
            low = secret.lower()
            checks.append(any(w.lower() in low for w in self.stopwords))
        if not checks:
            return False
        return all(checks) if self.condition == "AND" else any(checks)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    regex: str
    description: str = ""
    secret_group: int = 0
    entropy: float = 0.0
    keywords: tuple[str, ...] = ()
    path: str | None = None
    allowlists: tuple[Allowlist, ...] = ()
    tags: tuple[str, ...] = ()
    source: str = "built-in"
    fast: bool = field(default=False, compare=False)

    def compiled(self) -> Pattern[str]:
        return compile_pattern(self.regex)

    def applies_to(self, path: str, warn: Warn = _no_warn) -> bool:
        """Whether the rule's ``path`` regex matches; a ``path`` that times out applies (the
        rule then runs on the file: nothing is dropped unseen)."""
        if self.path is None:
            return True
        return timed_search(self.path, path, f"path regex of rule {self.id!r}", warn) is not False


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    allowlists: tuple[Allowlist, ...] = ()

    def by_id(self, rule_id: str) -> Rule | None:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None


def _strs(value: object, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(cast("list[str]", value))
    raise KascanError(f"{where}: {what} must be a list of strings")


def _check_regex(pattern: str, where: str) -> None:
    import regex as _regex

    try:
        compile_pattern(pattern)
    except _regex.error as exc:
        raise KascanError(f"{where}: bad regex {pattern!r}: {exc}") from None


def _allowlist(raw: object, where: str) -> Allowlist:
    if not isinstance(raw, Mapping):
        raise KascanError(f"{where}: an allowlist must be a table")
    target = raw.get("regexTarget", "secret")
    if target not in ("secret", "match", "line"):
        raise KascanError(f"{where}: regexTarget must be secret, match or line")
    condition = str(raw.get("condition", "OR")).upper()
    if condition not in ("OR", "AND"):
        raise KascanError(f"{where}: condition must be OR or AND")
    al = Allowlist(
        regexes=_strs(raw.get("regexes"), "regexes", where),
        paths=_strs(raw.get("paths"), "paths", where),
        stopwords=_strs(raw.get("stopwords"), "stopwords", where),
        commits=_strs(raw.get("commits"), "commits", where),
        regex_target=target,
        condition="AND" if condition == "AND" else "OR",
        description=str(raw.get("description", ""))[:120],
    )
    for pattern in (*al.regexes, *al.paths):
        _check_regex(pattern, where)
    return al


def _allowlists(table: Mapping[str, object], where: str) -> tuple[Allowlist, ...]:
    out: list[Allowlist] = []
    single = table.get("allowlist")
    if single is not None:
        out.append(_allowlist(single, where + " allowlist"))
    many = table.get("allowlists")
    if many is not None:
        if not isinstance(many, list):
            raise KascanError(f"{where}: allowlists must be an array of tables")
        out.extend(_allowlist(a, f"{where} allowlists[{i}]") for i, a in enumerate(many))
    return tuple(out)


def _rule(raw: object, index: int, source: str) -> Rule:
    where = f"{source}: rules[{index}]"
    if not isinstance(raw, Mapping):
        raise KascanError(f"{where} must be a table")
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise KascanError(f"{where} has no id")
    where = f"{source}: rule {rid!r}"
    pattern = raw.get("regex")
    if not isinstance(pattern, str) or not pattern:
        raise KascanError(f"{where} has no regex (path-only rules are not supported)")
    group = raw.get("secretGroup", 0)
    if not isinstance(group, int) or group < 0:
        raise KascanError(f"{where}: secretGroup must be a whole number")
    ent = raw.get("entropy", 0.0)
    if not isinstance(ent, (int, float)):
        raise KascanError(f"{where}: entropy must be a number")
    path = raw.get("path")
    if path is not None and not isinstance(path, str):
        raise KascanError(f"{where}: path must be a regex string")
    fast = source == "built-in" and rid == BUILTIN_ID and pattern == BUILTIN_REGEX and group == 1
    if not fast:
        _check_regex(pattern, where)
        if group > compile_pattern(pattern).groups:
            raise KascanError(f"{where}: secretGroup {group} but the regex has fewer groups")
    if path is not None:
        _check_regex(path, where)
    keywords = tuple(k.lower() for k in _strs(raw.get("keywords"), "keywords", where) if k)
    return Rule(
        id=rid,
        regex=pattern,
        description=str(raw.get("description", "")),
        secret_group=group,
        entropy=float(ent),
        keywords=keywords,
        path=path,
        allowlists=_allowlists(raw, where),
        tags=_strs(raw.get("tags"), "tags", where),
        source=source,
        fast=fast,
    )


def parse_rules(text: str, source: str) -> RuleSet:
    if sys.version_info >= (3, 11):  # only for --rules files: the built-in set needs no parser
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KascanError(f"cannot read rules {source}: not valid TOML ({exc})") from None
    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list):
        raise KascanError(f"cannot read rules {source}: rules must be an array of tables")
    rules = tuple(_rule(r, i, source) for i, r in enumerate(raw_rules))
    ids = [r.id for r in rules]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise KascanError(f"cannot read rules {source}: duplicate rule id {sorted(dup)[0]!r}")
    return RuleSet(rules, _allowlists(doc, f"{source}: global"))


def _builtin_text() -> str:
    here = Path(__file__).resolve().parent
    # an installed wheel has kascan/rules/; a source checkout has rules/ next to the package
    for candidate in (here / "rules" / "kascan.toml", here.parent / "rules" / "kascan.toml"):
        try:
            return candidate.read_text("utf-8")
        except (FileNotFoundError, NotADirectoryError):
            continue
    from importlib import resources  # a zipped install (costs ~20 ms of imports: only then)

    return (resources.files("kascan") / "rules" / "kascan.toml").read_text("utf-8")


def builtin_rules() -> RuleSet:
    """The rules of the shipped ``rules/kascan.toml``, built without a TOML parser (importing
    tomllib costs a hook ~5 ms); ``builtin_rules_from_file`` reads the file, and a test checks
    that the two agree."""
    return RuleSet(
        (
            Rule(
                id=BUILTIN_ID,
                regex=BUILTIN_REGEX,
                description="Kubeadapt API key",
                secret_group=1,
                entropy=3.0,
                keywords=(BUILTIN_PREFIX,),
                tags=("kubeadapt", "api-key", "finops"),
                source="built-in",
                fast=True,
            ),
        )
    )


def builtin_rules_from_file() -> RuleSet:
    return parse_rules(_builtin_text(), "built-in")


def load_rules(extra: Sequence[Path] = (), builtin: bool = True) -> RuleSet:
    """The built-in rules plus each ``--rules FILE``; a user rule with a built-in id replaces it."""
    sets: list[RuleSet] = [builtin_rules()] if builtin else []
    for path in extra:
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise KascanError(f"cannot read rules {path}: {reason}") from None
        sets.append(parse_rules(text, str(path)))
    by_id: dict[str, Rule] = {}
    allow: list[Allowlist] = []
    for rs in sets:
        for rule in rs.rules:
            by_id[rule.id] = rule
        allow.extend(rs.allowlists)
    if not by_id:
        raise KascanError("no rules to scan with")
    return RuleSet(tuple(by_id.values()), tuple(allow))
