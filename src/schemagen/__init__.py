"""schemagen: a Pydantic model in, a validated instance out."""

from schemagen.batch.run import BatchResult, BatchSummary, aextract_many, extract_many
from schemagen.client import (
    Client,
    aextract,
    aextract_iter,
    aextract_result,
    aextract_stream,
    extract,
    extract_iter,
    extract_result,
    extract_stream,
)
from schemagen.doctor import CheckResult, Doctor, DoctorReport, run_doctor
from schemagen.enforcement import KeywordEnforcement
from schemagen.engine.bounds import BoundRule, max_output_tokens, output_bound
from schemagen.engine.budget import Budget
from schemagen.engine.pricing import price_for, register_price
from schemagen.engine.repetition import RepetitionGuard, detect_repetition
from schemagen.engine.run import Extraction, Settings
from schemagen.engine.stream import InvalidItem, Partial
from schemagen.errors import (
    APIConnectionError,
    APITimeoutError,
    BudgetExceeded,
    ConfigurationError,
    ContextOverflowError,
    EmptyTextError,
    ExtractionError,
    MissingDependencyError,
    ModeUnsupportedError,
    RateLimitError,
    RefusalError,
    RequestRejectedError,
    SchemaError,
    SchemagenError,
    ServerError,
    TemplateError,
    TemplateSecurityError,
    TransportError,
    TruncatedError,
    UnsupportedFeatureError,
)
from schemagen.exchange import Completion, Request, ToolCall, Usage
from schemagen.grounding import Citation, Grounded, Quote
from schemagen.observe.hooks import HookEvent, Hooks
from schemagen.observe.otel import Telemetry
from schemagen.render.messages import Example
from schemagen.retry import RetryPolicy
from schemagen.schema import SchemaChange, ToolSpec, build_tool
from schemagen.streaming import AsyncPartialStream, PartialStream
from schemagen.tokens import count_tokens
from schemagen.trace import AttemptRecord, Trace

__version__ = "0.4.0"

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AsyncPartialStream",
    "AttemptRecord",
    "BatchResult",
    "BatchSummary",
    "BoundRule",
    "Budget",
    "BudgetExceeded",
    "CheckResult",
    "Citation",
    "Client",
    "Completion",
    "ConfigurationError",
    "ContextOverflowError",
    "Doctor",
    "DoctorReport",
    "EmptyTextError",
    "Example",
    "Extraction",
    "ExtractionError",
    "Grounded",
    "HookEvent",
    "Hooks",
    "InvalidItem",
    "KeywordEnforcement",
    "MissingDependencyError",
    "ModeUnsupportedError",
    "Partial",
    "PartialStream",
    "Quote",
    "RateLimitError",
    "RefusalError",
    "RepetitionGuard",
    "Request",
    "RequestRejectedError",
    "RetryPolicy",
    "SchemaChange",
    "SchemaError",
    "SchemagenError",
    "ServerError",
    "Settings",
    "Telemetry",
    "TemplateError",
    "TemplateSecurityError",
    "ToolCall",
    "ToolSpec",
    "Trace",
    "TransportError",
    "TruncatedError",
    "UnsupportedFeatureError",
    "Usage",
    "__version__",
    "aextract",
    "aextract_iter",
    "aextract_many",
    "aextract_result",
    "aextract_stream",
    "build_tool",
    "count_tokens",
    "detect_repetition",
    "extract",
    "extract_iter",
    "extract_many",
    "extract_result",
    "extract_stream",
    "max_output_tokens",
    "output_bound",
    "price_for",
    "register_price",
    "run_doctor",
]
