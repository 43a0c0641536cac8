"""``schemagen doctor``: conformance checks for an OpenAI-compatible endpoint's tool-call path.

A chat/tool request goes through three stages on the server: the conversation is expanded
into one prompt with the chat template, the prompt is completed, the completion is parsed
back into ``tool_calls``. Each check asks the server something whose right answer is known
and compares; each gives pass, fail or skip (with the reason) and the evidence.

Layout: ``checks/`` is the registry, one module per check, each a pure ``judge_*`` function
plus the probe that gathers its input through :class:`Doctor`; ``session.py`` holds the
:class:`Doctor` (all I/O, through the backend); ``tokenizers.py`` counts tokens of local
renders; ``report.py`` is the plain result data.
"""

from schemagen.doctor.checks import CHECKS, REGISTRY, get_check
from schemagen.doctor.checks.base import Check, DoctorCity
from schemagen.doctor.checks.empty_content import judge_empty_content
from schemagen.doctor.checks.finish_reason import judge_finish_reason
from schemagen.doctor.checks.forced_tool import judge_forced_tool
from schemagen.doctor.checks.generation_prompt import judge_generation_prompt
from schemagen.doctor.checks.markup_leak import judge_markup_leak, leaked_markup
from schemagen.doctor.checks.parity import judge_parity
from schemagen.doctor.checks.tools_injected import judge_tools_injected
from schemagen.doctor.report import CheckResult, DoctorReport, Verdict
from schemagen.doctor.session import Doctor, run_doctor, server_template
from schemagen.doctor.tokenizers import (
    Tokenizer,
    backend_tokenizer,
    gguf_tokenizer,
    hf_tokenizer,
    server_tokenizer,
    tokenizer_from_path,
)

__all__ = [
    "CHECKS",
    "REGISTRY",
    "Check",
    "CheckResult",
    "Doctor",
    "DoctorCity",
    "DoctorReport",
    "Tokenizer",
    "Verdict",
    "backend_tokenizer",
    "get_check",
    "gguf_tokenizer",
    "hf_tokenizer",
    "judge_empty_content",
    "judge_finish_reason",
    "judge_forced_tool",
    "judge_generation_prompt",
    "judge_markup_leak",
    "judge_parity",
    "judge_tools_injected",
    "leaked_markup",
    "run_doctor",
    "server_template",
    "server_tokenizer",
    "tokenizer_from_path",
]
