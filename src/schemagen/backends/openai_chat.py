"""Deprecated alias of :mod:`schemagen.backends.openai_compat`, kept for one release."""

from __future__ import annotations

import sys
import warnings

from schemagen.backends import openai_compat

warnings.warn(
    "schemagen.backends.openai_chat is now schemagen.backends.openai_compat; the old path goes away "
    "in the next release",
    DeprecationWarning,
    stacklevel=2,
)

# The same module object, so patches and isinstance checks through the old path still hold.
sys.modules[__name__] = openai_compat
