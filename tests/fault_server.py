"""Moved to :mod:`schemagen.testing` (public); this name stays for branches still importing it."""

from schemagen.testing import *  # noqa: F403
from schemagen.testing import __all__ as __all__
