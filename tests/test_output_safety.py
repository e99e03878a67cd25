"""Issue 12, items 6, 9, 12 and 15: what kascan writes is safe to show and safe to write.

- 6: names that are not UTF-8 are written losslessly (JSON ``path`` + ``path_bytes``, SARIF
  ``%``-escaped URIs), in every format, under a UTF-8 locale and with a strict stdout.
- 9: one escape() for every human-facing line; workflow commands cannot be injected by names.
- 12: one redaction (scrub) for every string that reaches a report, summary or error.
- 15: ``-o`` never opens a FIFO or device it did not create, and never follows a planted link.

Everything runs the real CLI in a subprocess on real files, archives made by ``tar``, real git
repositories and a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import stat
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PREFIX, GitRepo, from_inside, make_key, write_files
from tests.sarif_util import assert_valid_sarif, every_location, results, unescape_command

FORMATS = ("text", "json", "sarif", "github", "keys")


@dataclass
class Raw:
    """A run's exit code and its output as bytes (nothing decoded away)."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8")  # strict: the output must be valid UTF-8

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8")


Kascan = Callable[..., Raw]


@pytest.fixture
def kascan(env: dict[str, str]) -> Kascan:
    """The real CLI; stdout and stderr kept as bytes. ``pass_fds`` hands descriptors on."""

    def run(
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        input: bytes | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 60,
        pass_fds: Sequence[int] = (),
        stdout: int | None = None,
    ) -> Raw:
        e = {k: v for k, v in env.items() if k not in ("PYTHONIOENCODING", "PYTHONUTF8")}
        e.update(extra_env or {})
        args, cwd = from_inside(args, cwd)
        proc = subprocess.run(
            [sys.executable, "-m", "kascan", *map(os.fsdecode, args)],
            cwd=cwd,
            input=input,
            stdout=subprocess.PIPE if stdout is None else stdout,
            stderr=subprocess.PIPE,
            env=e,
            timeout=timeout,
            check=False,
            pass_fds=tuple(pass_fds),
        )
        return Raw(proc.returncode, proc.stdout or b"", proc.stderr)

    return run


STRICT_UTF8 = {"LC_ALL": "C.UTF-8"}  # PYTHONIOENCODING unset
STRICT_STDOUT = {"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict"}

# What no human-facing byte stream may contain raw: C0 (but LF), DEL, C1, bidi controls.
_RAW_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def assert_safe_lines(text: str, commands_ok: bool = False) -> list[str]:
    """Every line of ``text`` shows no control or bidi character raw, and none is a workflow
    command (unless ``commands_ok``: then each line must be exactly one ::error/::warning)."""
    assert "Traceback" not in text, text
    lines = text.splitlines()
    for line in lines:
        assert not _RAW_CONTROL.search(line), f"raw control character in {line!r}"
        assert "##[" not in line, line
        if commands_ok and line.startswith("::"):
            # the command is error/warning; no ':' in its properties ends them early
            assert re.match(r"::(error|warning) [^:]*::", line), line
        else:
            assert not line.lstrip().startswith("::"), f"a workflow command: {line!r}"
    return lines


def assert_absent(blob: bytes | str, *secrets: str) -> None:
    """None of ``secrets`` (keys: their body) appears in ``blob``, raw or base64-encoded."""
    data = blob.encode("utf-8", "surrogateescape") if isinstance(blob, str) else blob
    for s in secrets:
        body = s[len(PREFIX) :] if s.startswith(PREFIX) else s
        assert body.encode() not in data, f"{body[:6]}… leaked"
        for k in range(3):  # every base64 alignment of the body
            enc = base64.b64encode(b"x" * k + body.encode())[4:-4]
            assert enc not in data, f"{body[:6]}… leaked as base64"


def all_outputs(tmp_path: Path, stem: str) -> list[str]:
    """``-o`` arguments for every format, into files under ``tmp_path``."""
    args = []
    for fmt in FORMATS:
        args += ["-o", f"{fmt}:{tmp_path / f'{stem}.{fmt}'}"]
    return args


def read_outputs(tmp_path: Path, stem: str) -> dict[str, bytes]:
    return {fmt: (tmp_path / f"{stem}.{fmt}").read_bytes() for fmt in FORMATS}


def bname(root: Path, name: bytes) -> bytes:
    return os.fsencode(root) + b"/" + name


def write_bytes_name(root: Path, name: bytes, content: bytes) -> None:
    with open(bname(root, name), "wb") as fh:
        fh.write(content)


# == item 6: names that are not UTF-8 ==========================================================


def _non_utf8_tree(tmp_path: Path, key: str) -> Path:
    t = tmp_path / "t"
    t.mkdir()
    write_bytes_name(t, b"caf\xff.env", f"KEY={key}\n".encode())
    inner = tmp_path / "inner"
    inner.mkdir()
    write_bytes_name(inner, b"m\xfe\xe9.cfg", f"token: {key}\n".encode())
    subprocess.run(
        [b"tar", b"-cf", bname(t, b"pack.tar"), b"-C", os.fsencode(inner), b"m\xfe\xe9.cfg"],
        check=True,
    )
    return t


@pytest.mark.parametrize("locale_env", [STRICT_UTF8, STRICT_STDOUT], ids=["C.UTF-8", "strict"])
def test_non_utf8_names_are_written_losslessly_in_every_format(
    tmp_path: Path, kascan: Kascan, key: str, locale_env: dict[str, str]
) -> None:
    t = _non_utf8_tree(tmp_path, key)
    expected = {b"caf\xff.env", b"pack.tar!m\xfe\xe9.cfg"}
    res = kascan("scan", t, *all_outputs(tmp_path, "r"), extra_env=locale_env)
    assert res.returncode == 1, res.stderr
    assert_safe_lines(res.err)
    files = read_outputs(tmp_path, "r")
    for fmt, data in files.items():
        text = data.decode("utf-8")  # strict: every report is valid UTF-8
        if fmt in ("text", "keys"):
            assert_safe_lines(text)
            assert "caf\\xff.env" in text and "pack.tar!m\\xfe\\xe9.cfg" in text, text
        assert_absent(data, key)
    assert_safe_lines(res.out)  # the text report streamed on stdout
    json_stdout = kascan("scan", t, "-f", "json", "-q", extra_env=locale_env)
    for blob in (json_stdout.out, files["json"].decode()):
        doc = json.loads(blob)
        found = doc["findings"]
        assert {base64.b64decode(f["path_bytes"]) for f in found} == expected
        assert {f["path"] for f in found} == {"caf\\xff.env", "pack.tar!m\\xfe\\xe9.cfg"}
        assert "path_bytes" not in json.dumps(doc["summary"])
    sarif = json.loads(files["sarif"])
    assert_valid_sarif(sarif)
    found: list[Any] = results(sarif)
    (found_sarif,) = found  # one key: one result, the other file a related location
    places = [found_sarif["locations"][0], *found_sarif["relatedLocations"]]
    uris = {p["physicalLocation"]["artifactLocation"]["uri"] for p in places}
    assert uris == {"caf%FF.env", "pack.tar"}
    members = {m for _, _, m in every_location(found_sarif)}
    assert members == {None, "m\\xfe\\xe9.cfg"}
    for line in files["github"].decode().splitlines():
        kind, props, _ = unescape_command(line)
        assert kind == "error" and props["file"] in ("caf\\xff.env", "pack.tar")
    # every format on stdout too, with a strict stdout
    for fmt in FORMATS:
        out = kascan("scan", t, "-f", fmt, "-q", extra_env=locale_env)
        assert out.returncode == 1, (fmt, out.stderr)
        out.out.encode("utf-8")  # decodes strictly
        assert_safe_lines(out.out, commands_ok=fmt == "github")


def test_non_utf8_names_survive_merge_and_git_history(
    tmp_path: Path, kascan: Kascan, make_repo: Callable[[Path], GitRepo], key: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    write_bytes_name(repo.path, b"g\xff\xfe.env", f"K={key}\n".encode())
    repo.commit("add")
    res = kascan("git", repo.path, "-o", f"json:{tmp_path / 'h.json'}", extra_env=STRICT_STDOUT)
    assert res.returncode == 1, res.stderr
    assert_safe_lines(res.out + res.err)
    assert "g\\xff\\xfe.env" in res.out
    doc = json.loads((tmp_path / "h.json").read_text("utf-8"))
    (f,) = doc["findings"]
    assert (f["path"], base64.b64decode(f["path_bytes"])) == ("g\\xff\\xfe.env", b"g\xff\xfe.env")
    # merge reads path_bytes back: the merged report names the same bytes
    merged = kascan("merge", tmp_path / "h.json", "-f", "json", extra_env=STRICT_STDOUT)
    assert merged.returncode == 1, merged.stderr
    (m,) = json.loads(merged.out)["findings"]
    assert base64.b64decode(m["path_bytes"]) == b"g\xff\xfe.env"
    assert m["fingerprint"] == f["fingerprint"]


# == item 9: one escape() for every human-facing line ==========================================


def test_escape_makes_every_control_format_and_bidi_character_visible() -> None:
    from kascan.output import escape, unsurrogate, workflow_data, workflow_property

    unsafe = [
        chr(cp)
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Cs", "Zl", "Zp")
    ]
    assert len(unsafe) > 300
    for ch in unsafe:
        shown = escape(f"a{ch}b")
        assert shown.startswith("a\\") and shown.endswith("b") and shown.isprintable(), repr(ch)
    assert escape("caf\udcff.txt") == "caf\\xff.txt" == unsurrogate("caf\udcff.txt")
    assert escape("\x1b[2K\r\n\u202e") == "\\x1b[2K\\r\\n\\u202e"
    assert escape("  ::stop-commands::x") == "  \\x3a:stop-commands::x"
    assert escape("a ##[add-mask]b") == "a ##\\x5badd-mask]b"
    plain = "src/app/config ünïcödé → 日本.txt: fine, 100%"
    assert escape(plain) == plain
    assert workflow_data("50%\r\nx\x1b") == "50%25%0D%0Ax\\x1b"
    assert workflow_property("a:b,c%") == "a%3Ab%2Cc%25"


def _hostile_tree(tmp_path: Path, key: str) -> tuple[Path, list[str]]:
    t = tmp_path / "t"
    names = [
        "\x1b[2K\x1b[1Aerased.env",  # erase the line, move up
        "forged\nfake.txt:9:9  kubeadapt-api-key  ka_live_Zzzz….env",  # a forged line
        "rtl\u202etxt.env",  # bidi override: reorders what follows
        "::stop-commands::tok1.env",  # a workflow command at a line start
        "bell\x07\x7f\x85\u2066x.env",
        "x##[add-mask]y.env",
    ]
    write_files(t, {n: f"K={key}\n" for n in names})
    # a corrupt zip whose name forges a workflow command in the warning on stderr
    write_files(t, {"x\n::stop-commands::tok2.zip": b"PK\x03\x04 not a zip at all"})
    return t, names


def test_hostile_names_cannot_forge_erase_or_reorder_lines(
    tmp_path: Path, kascan: Kascan, key: str
) -> None:
    t, names = _hostile_tree(tmp_path, key)
    res = kascan("scan", t)  # the text report on stdout, warnings on stderr
    assert res.returncode == 1, res.stderr
    out_lines = assert_safe_lines(res.out)
    err_lines = assert_safe_lines(res.err)
    # one line per finding, then the summary: nothing split, nothing forged
    finding_lines = [ln for ln in out_lines if not ln.startswith("kascan:")]
    assert len(finding_lines) == len(names), out_lines
    assert not any(ln.startswith("fake.txt") for ln in out_lines)
    assert "forged\\nfake.txt:9:9" in res.out and "\\x1b[2K\\x1b[1Aerased.env:1:3" in res.out
    assert "rtl\\u202etxt.env" in res.out and "\\x3a:stop-commands::tok1.env" in res.out
    warning = [ln for ln in err_lines if "tok2" in ln]
    assert len(warning) == 1 and "x\\n::stop-commands::tok2.zip" in warning[0], err_lines
    assert kascan("scan", t, "-q", *all_outputs(tmp_path, "r")).returncode == 1
    files = read_outputs(tmp_path, "r")
    assert_safe_lines(files["text"].decode())
    assert_safe_lines(files["keys"].decode())
    gh = assert_safe_lines(files["github"].decode(), commands_ok=True)
    assert len(gh) == len(names)
    shown = {unescape_command(line)[1]["file"] for line in gh}
    assert "forged\nfake.txt:9:9  kubeadapt-api-key  ka_live_Zzzz….env" in shown  # %0A, decoded
    assert "\\x1b[2K\\x1b[1Aerased.env" in shown
    # JSON keeps the names exact (JSON escapes control characters itself)
    paths = {f["path"] for f in json.loads(files["json"])["findings"]}
    assert paths == set(names)


def test_github_format_escapes_names_and_stderr_cannot_inject(
    tmp_path: Path, kascan: Kascan, key: str
) -> None:
    t, names = _hostile_tree(tmp_path, key)
    res = kascan("scan", t, "-f", "github")
    assert res.returncode == 1
    lines = assert_safe_lines(res.out, commands_ok=True)
    commands = [ln for ln in lines if ln.startswith("::")]
    assert len(commands) == len(names)
    assert_safe_lines(res.err)
    assert any("x\\n::stop-commands::tok2.zip" in ln for ln in res.err.splitlines())


def test_author_names_and_emails_are_escaped(
    tmp_path: Path, kascan: Kascan, make_repo: Callable[[Path], GitRepo], key: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    repo.env["GIT_AUTHOR_NAME"] = "Mallory \x1b[8mhidden\x1b[0m \u202eevil"
    repo.env["GIT_AUTHOR_EMAIL"] = "m\x1b]0;title\x07@example.com"
    repo.commit("leak", {"a.env": f"K={key}\n"})
    for fmt in ("text", "keys"):
        res = kascan("git", repo.path, "-f", fmt)
        assert res.returncode == 1, res.stderr
        assert_safe_lines(res.out + res.err)
        assert "Mallory \\x1b[8mhidden\\x1b[0m \\u202eevil" in res.out


def test_error_lines_are_escaped(tmp_path: Path, kascan: Kascan) -> None:
    bad = tmp_path / "r\x1b[2K\n::stop-commands::tok.json"
    bad.write_text("not json")
    res = kascan("merge", bad)
    assert res.returncode == 2
    (line,) = assert_safe_lines(res.err)
    assert line.startswith("Error: cannot read report ") and "\\x1b[2K\\n::stop" in line


# == item 12: one redaction for every string that reaches a report =============================


def test_key_in_a_file_name_never_appears_in_full(
    tmp_path: Path, kascan: Kascan, rng: random.Random
) -> None:
    content_key, name_key, other = make_key(rng), make_key(rng), make_key(rng)
    t = tmp_path / "t"
    write_files(
        t,
        {
            f"cfg/{name_key}.env": f"K={content_key}\n",  # a finding whose path holds a key
            f"{other}.zip": b"PK\x03\x04 corrupt",  # a warning naming a key
        },
    )
    for show in ((), ("--show-secrets",)):
        res = kascan("scan", t, *show, *all_outputs(tmp_path, "s"))
        assert res.returncode == 1, res.stderr
        files = read_outputs(tmp_path, "s")
        blobs = [res.stdout, res.stderr, *files.values()]
        for blob in blobs:
            assert_absent(blob, name_key, other)
        if show:  # the finding's own key, in full, where the reports show keys
            assert all(content_key.encode() in files[f] for f in ("json", "text", "keys"))
        else:
            assert_absent(b"".join(blobs), content_key)
        (found,) = json.loads(files["json"])["findings"]
        assert found["path"] == f"cfg/{name_key[:12]}….env"  # redacted, still recognisable
        assert f"{other[:12]}….zip" in res.err


def test_stdin_name_category_prefix_and_rule_text_are_scrubbed(
    tmp_path: Path, kascan: Kascan, rng: random.Random
) -> None:
    found, k_name, k_cat, k_prefix, k_id, k_desc = (make_key(rng) for _ in range(6))
    rules = tmp_path / "rules.toml"
    rules.write_text(
        "[[rules]]\n"
        f'id = "custom-{k_id}"\n'
        f'description = "token like {k_desc}"\n'
        'regex = "tok_[a-z0-9]{24}"\n'
    )
    secret2 = "tok_" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=24))
    stdin = f"K={found}\nT={secret2}\n".encode()
    res = kascan(
        "scan",
        "-",
        "--stdin-name",
        f"in/{k_name}.env",
        "--sarif-category",
        f"cat-{k_cat}",
        "--path-prefix",
        f"sub/{k_prefix}",
        "--rules",
        rules,
        "-f",
        "github",
        *all_outputs(tmp_path, "r"),
        input=stdin,
    )
    assert res.returncode == 1, res.stderr
    blobs = [res.stdout, res.stderr, *read_outputs(tmp_path, "r").values()]
    for blob in blobs:
        assert_absent(blob, k_name, k_cat, k_prefix, k_id, k_desc, found, secret2)
    sarif = json.loads(read_outputs(tmp_path, "r")["sarif"])
    assert_valid_sarif(sarif)
    run = sarif["runs"][0]
    assert run["automationDetails"]["id"] == f"cat-{k_cat[:12]}…/"
    ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert f"custom-{k_id[:12]}…" in ids


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _serve(directory: Path) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietFiles, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_git(tmp_path: Path, make_repo: Callable[[Path], GitRepo], key: str) -> Iterator[int]:
    """A bare repository with a key, served over dumb HTTP on 127.0.0.1 (``/r.git``)."""
    repo = make_repo(tmp_path / "src")
    repo.commit("leak", {"deploy/app.env": f"KUBEADAPT_KEY={key}\n"})
    served = tmp_path / "www"
    served.mkdir()
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(repo.path), str(served / "r.git")],
        check=True,
        env=repo.env,
    )
    subprocess.run(["git", "update-server-info"], cwd=served / "r.git", check=True, env=repo.env)
    yield from _serve(served)


def test_clone_url_credentials_never_reach_a_report(
    tmp_path: Path, kascan: Kascan, http_git: int, key: str, rng: random.Random
) -> None:
    token = "tok" + "".join(rng.choices("0123456789abcdef", k=24))
    user, password = "deploy", "pw" + "".join(rng.choices("0123456789abcdef", k=20))
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    dead_port = closed.server_address[1]
    closed.server_close()  # nothing listens there: that clone fails
    urls = [
        f"http://{token}@127.0.0.1:{http_git}/r.git",
        f"http://{user}:{password}@127.0.0.1:{http_git}/r.git",
        f"http://{token}:x-oauth-basic@127.0.0.1:{dead_port}/gone.git",
    ]
    res = kascan("git", *urls, "-f", "json", *all_outputs(tmp_path, "r"))
    assert res.returncode == 2, res.stderr  # one repository failed, after the reports
    blobs = [res.stdout, res.stderr, *read_outputs(tmp_path, "r").values()]
    for blob in blobs:
        assert_absent(blob, key, token, password)
    doc = json.loads(read_outputs(tmp_path, "r")["json"])
    repos = {r["repo"] for r in doc["repos"]}
    assert repos == {
        f"http://***@127.0.0.1:{http_git}/r.git",
        f"http://***@127.0.0.1:{dead_port}/gone.git",
    }
    assert {f["repo"] for f in doc["findings"]} == {f"http://***@127.0.0.1:{http_git}/r.git"}
    # a single clone: its error line and its report
    one = kascan("git", urls[2])
    assert one.returncode == 2
    assert_absent(one.stderr, token)
    assert f"http://***@127.0.0.1:{dead_port}/gone.git" in one.err
    single = kascan("git", urls[1], "-f", "sarif")
    assert single.returncode == 1
    assert_absent(single.stdout + single.stderr, password, key)


class _Inactive(BaseHTTPRequestHandler):
    """An API that says every key is revoked (401)."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_api_url_and_ref_names_are_scrubbed_in_notes(
    tmp_path: Path, kascan: Kascan, make_repo: Callable[[Path], GitRepo], rng: random.Random
) -> None:
    found, in_url, in_ref = make_key(rng), make_key(rng), make_key(rng)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Inactive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        write_files(tmp_path / "t", {"a.env": f"K={found}\n"})
        url = f"http://127.0.0.1:{server.server_address[1]}/{in_url}"
        res = kascan(
            "scan",
            tmp_path / "t",
            "--verify",
            "--api-url",
            url,
            "-o",
            "sarif:r.sarif",
            cwd=tmp_path,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert res.returncode == 1, res.stderr
    assert "verified 1 distinct keys against" in res.out
    assert_absent(res.stdout + res.stderr + (tmp_path / "r.sarif").read_bytes(), in_url, found)
    repo = make_repo(tmp_path / "repo")
    repo.commit("one", {"a.txt": "x\n"})
    repo.git("branch", in_ref)
    res = kascan("git", repo.path, "--range", f"main..{in_ref}")
    assert res.returncode == 0, res.stderr
    assert "has no commits" in res.out + res.err or "nothing to scan" in res.out + res.err
    assert_absent(res.stdout + res.stderr, in_ref)


def _report(findings: list[dict[str, object]]) -> str:
    return json.dumps({"tool": {"name": "kascan"}, "command": "scan", "findings": findings})


def test_crafted_merge_input_cannot_smuggle_keys(
    tmp_path: Path, kascan: Kascan, rng: random.Random
) -> None:
    real, hidden1, hidden2, hidden3, in_repo = (make_key(rng) for _ in range(5))

    def fp(s: str) -> str:
        return "sha256:" + hashlib.sha256(s.encode()).hexdigest()

    base = {"rule_id": "kubeadapt-api-key", "line": 1, "column": 1}
    crafted = [
        # a "redacted form" that is a full key with a short tail
        {**base, "path": "a.env", "secret": hidden1 + "_ab…", "fingerprint": "sha256:" + "1" * 64},
        # two keys in one "secret", with a fingerprint that matches the text
        {
            **base,
            "path": "b.env",
            "secret": f"{real} {hidden2}",
            "fingerprint": fp(f"{real} {hidden2}"),
        },
        # a key in the rule id, the author, the repo and the path; the finding's own key in full
        {
            **base,
            "rule_id": f"r-{hidden3}",
            "path": f"c/{hidden3}.env",
            "repo": f"https://{in_repo}@example.com/x.git",
            "author": f"me {hidden3}",
            "commit": "0" * 40,
            "secret": real,
            "fingerprint": fp(real),
        },
    ]
    src = tmp_path / "crafted.json"
    src.write_text(_report(crafted))
    for show in ((), ("--show-secrets",)):
        res = kascan("merge", src, *show, *all_outputs(tmp_path, "m"))
        assert res.returncode == 1, res.stderr
        files = read_outputs(tmp_path, "m")
        blobs = [res.stdout, res.stderr, *files.values()]
        for blob in blobs:
            assert_absent(blob, hidden1, hidden2, hidden3, in_repo)
        secrets = {f["path"]: f["secret"] for f in json.loads(files["json"])["findings"]}
        if show:
            assert secrets[f"c/{hidden3[:12]}….env"] == real  # the finding's own key only
        else:
            assert_absent(b"".join(blobs), real)


# == item 15: -o never opens what it did not create ============================================


def test_planted_fifo_is_refused_without_being_opened(
    tmp_path: Path, kascan: Kascan, key: str
) -> None:
    write_files(tmp_path / "t", {"a.env": f"K={key}\n"})
    shared = tmp_path / "shared"
    shared.mkdir()
    fifo = shared / "report.json"
    os.mkfifo(fifo)
    link = shared / "linked.json"
    os.mkfifo(shared / "other.fifo")
    link.symlink_to(shared / "other.fifo")
    for extra in ((), ("--show-secrets",)):
        try:
            res = kascan("scan", tmp_path / "t", "-o", f"json:{fifo}", *extra, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("kascan opened the planted FIFO and blocked")
        assert res.returncode == 2, res.stderr
        errors = [ln for ln in res.err.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1 and "refusing to write report" in errors[0], res.err
        assert "FIFO" in errors[0] and "Traceback" not in res.err
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert "a.env:1:3" not in res.out  # refused before anything was scanned
        if not extra:
            assert_absent(res.stdout + res.stderr, key)
    # a symlink planted at the target is replaced, never followed (into the FIFO behind it)
    try:
        res = kascan("scan", tmp_path / "t", "-q", "-o", f"json:{link}", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("kascan followed a planted symlink into a FIFO")
    assert res.returncode == 1, res.stderr
    assert stat.S_ISREG(os.lstat(link).st_mode)
    assert json.loads(link.read_text())["findings"][0]["path"] == "a.env"
    assert stat.S_ISFIFO(os.lstat(shared / "other.fifo").st_mode)
    assert sorted(p.name for p in shared.iterdir()) == ["linked.json", "other.fifo", "report.json"]


def test_a_device_is_refused_unless_named(tmp_path: Path, kascan: Kascan, key: str) -> None:
    write_files(tmp_path / "t", {"a.env": f"K={key}\n"})
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")  # a symlink is replaced: the device behind it is untouched
    res = kascan("scan", tmp_path / "t", "-q", "-o", f"json:{link}")
    assert res.returncode == 1 and stat.S_ISREG(os.lstat(link).st_mode), res.stderr
    sock_dir = tmp_path / "s"
    sock_dir.mkdir()
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_dir / "r.json"))
    try:
        res = kascan("scan", tmp_path / "t", "-q", "-o", f"json:{sock_dir / 'r.json'}")
    finally:
        sock.close()
    assert res.returncode == 2 and "refusing to write report" in res.err and "socket" in res.err
    # /dev/null is named as such: written through, still the device
    res = kascan("scan", tmp_path / "t", "-q", "-o", "json:/dev/null")
    assert res.returncode == 1 and stat.S_ISCHR(os.stat("/dev/null").st_mode), res.stderr


def test_named_streams_still_work(tmp_path: Path, kascan: Kascan, key: str) -> None:
    write_files(tmp_path / "t", {"a.env": f"K={key}\n"})
    res = kascan("scan", tmp_path / "t", "-q", "-f", "json", "-o", "json:/dev/stdout")
    assert res.returncode == 1, res.stderr
    assert json.loads(res.out)["findings"][0]["path"] == "a.env"
    res = kascan("scan", tmp_path / "t", "-q", "-f", "json", "-o", "text:/dev/stderr")
    assert res.returncode == 1 and "a.env:1:3" in res.err and json.loads(res.out)["findings"]
    # /dev/fd/N: a pipe handed to the child (process substitution does this)
    r, w = os.pipe()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(os.fdopen(r, "rb").read()))
    reader.start()
    try:
        res = kascan(
            "scan", tmp_path / "t", "-q", "-f", "json", "-o", f"json:/dev/fd/{w}", pass_fds=[w]
        )
    finally:
        os.close(w)
    reader.join(30)
    assert res.returncode == 1, res.stderr
    assert json.loads(got[0])["findings"][0]["path"] == "a.env"
    # /dev/fd/1 when stdout is a file opened for appending: appended to, never replaced
    out = tmp_path / "log.txt"
    out.write_text("earlier line\n")
    with out.open("a") as fh:
        res = kascan(
            "scan", tmp_path / "t", "-q", "-f", "json", "-o", "text:/dev/fd/1", stdout=fh.fileno()
        )
    assert res.returncode == 1, res.stderr
    text = out.read_text()
    assert text.startswith("earlier line\n") and '"findings"' in text and "a.env:1:3" in text
    # a descriptor that is not open: one line, exit 2
    res = kascan("scan", tmp_path / "t", "-q", "-o", "json:/dev/fd/97")
    assert res.returncode == 2 and "cannot write report /dev/fd/97" in res.err


def test_report_files_are_private_with_secrets_and_follow_the_umask_otherwise(
    tmp_path: Path, env: dict[str, str], key: str
) -> None:
    write_files(tmp_path / "t", {"a.env": f"K={key}\n"})
    for umask, extra, mode in (
        ("027", "", 0o640),
        ("022", "", 0o644),
        ("000", "--show-secrets", 0o600),
        ("022", "--show-secrets", 0o600),
    ):
        target = tmp_path / f"r-{umask}{extra}.json"
        target.write_text("old")
        target.chmod(0o666)  # an existing, world-writable report: replaced, not reused
        cmd = f'umask {umask} && exec "$0" -m kascan scan t -q {extra} -o "json:$1"'
        proc = subprocess.run(
            ["sh", "-c", cmd, sys.executable, str(target)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        assert stat.S_IMODE(os.lstat(target).st_mode) == mode, (umask, extra)
        assert json.loads(target.read_text())["findings"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r-")]  # no temp file left
