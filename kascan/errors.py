"""One error type: a one-line message and exit code 2."""

from __future__ import annotations

import click


class KascanError(click.ClickException):
    """An operational or usage error; click prints ``Error: <message>`` and exits 2."""

    exit_code = 2
