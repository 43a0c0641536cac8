"""The ``schemagen`` command line."""

from schemagen.cli.main import app

__all__ = ["app"]
