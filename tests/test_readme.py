"""The README's set-up commands are the ones CI runs."""

from __future__ import annotations

from .conftest import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh", 1)[1].split("```", 1)[0]
    return [ln for ln in block.strip().splitlines() if ln and not ln.startswith("#")]


def test_readme_opens_with_install_and_test_commands() -> None:
    install, test = _commands()
    assert install.endswith("kascan scan .")
    assert "pip install" in install and "pip install -e '.[test]'" in test
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci
