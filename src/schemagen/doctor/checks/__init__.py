"""The doctor's checks, looked up by id, run and printed in this order.

A new check is one module holding ``CHECK`` (its id, title and probe, next to a pure
``judge_*`` function) plus one line in ``REGISTRY``.
"""

from __future__ import annotations

import importlib

from schemagen.doctor.checks.base import Check
from schemagen.errors import ConfigurationError

#: check id -> module holding ``CHECK``.
REGISTRY: dict[str, str] = {
    "forced-tool": "schemagen.doctor.checks.forced_tool",
    "chat-raw-parity": "schemagen.doctor.checks.parity",
    "generation-prompt": "schemagen.doctor.checks.generation_prompt",
    "empty-content": "schemagen.doctor.checks.empty_content",
    "tools-injected": "schemagen.doctor.checks.tools_injected",
    "markup-leak": "schemagen.doctor.checks.markup_leak",
    "finish-reason": "schemagen.doctor.checks.finish_reason",
    "auto-mode": "schemagen.doctor.checks.auto_mode",
}


def get_check(check_id: str) -> Check:
    """The registered check ``check_id``; ConfigurationError naming the known ids otherwise."""
    try:
        module = importlib.import_module(REGISTRY[check_id])
    except KeyError:
        raise ConfigurationError(
            f"Unknown doctor check {check_id!r}. Known checks: {', '.join(REGISTRY)}"
        ) from None
    check: Check = module.CHECK
    return check


#: (id, title) of every check, in the order they run and are printed.
CHECKS: tuple[tuple[str, str], ...] = tuple((c, get_check(c).title) for c in REGISTRY)
TITLES = dict(CHECKS)

__all__ = ["CHECKS", "REGISTRY", "TITLES", "Check", "get_check"]
