"""Git sources look inside what `kascan scan` looks inside: archives in blobs, base64, UTF-16."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Callable

from .conftest import GitRepo, Result, findings_of

Run = Callable[..., Result]


def _zip(member: str, content: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.txt", "nothing here\n")
        zf.writestr(member, content)
    return buf.getvalue()


def test_history_opens_archives_and_decodes_base64(
    run_cli: Run, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    a, b, c = keys(3)
    secret = base64.b64encode(f"  {b}".encode()).decode()
    first = git_repo.commit(
        "app",
        {
            "dist/app.apk": _zip("assets/config.json", f'{{\n  "kubeadapt": "{a}"\n}}\n'),
            "k8s/secret.yaml": f"apiVersion: v1\nkind: Secret\ndata:\n  api-key: {secret}\n",
            "win/setup.ps1": ("\ufeff# setup\r\n$env:KA = '" + c + "'\r\n").encode("utf-16-le"),
        },
    )
    git_repo.rm("dist/app.apk", "k8s/secret.yaml", "win/setup.ps1")
    git_repo.commit("remove secrets")
    res = run_cli("git", git_repo.path, "-f", "json")
    assert res.returncode == 1, res.stderr
    res.assert_no_leak(a, b, c)
    got = sorted((f["path"], f["line"], f["decoded"], f["commit"]) for f in findings_of(res))
    assert got == [
        ("dist/app.apk!assets/config.json", 2, None, first),
        ("k8s/secret.yaml", 4, "base64", first),
        ("win/setup.ps1", 2, "utf-16le", first),
    ]
    off = run_cli("git", git_repo.path, "-f", "json", "--no-archives", "--no-base64", "--no-utf16")
    assert off.returncode == 0, off.stdout


def test_staged_base64_secret_is_blocked(run_cli: Run, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("init", {"README.md": "hi\n"})
    encoded = base64.b64encode(key.encode()).decode()
    git_repo.write("secret.yaml", f"kind: Secret\ndata:\n  token: {encoded}\n")
    git_repo.git("add", "secret.yaml")
    res = run_cli("git", "--staged", "-f", "json", cwd=git_repo.path)
    assert res.returncode == 1
    assert [(f["path"], f["line"], f["decoded"]) for f in findings_of(res)] == [
        ("secret.yaml", 3, "base64")
    ]
    res.assert_no_leak(key)
