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
    ExtractionError,
    MissingDependencyError,
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
)
from schemagen.exchange import Completion, Request, ToolCall, Usage
from schemagen.render.messages import Example
from schemagen.retry import RetryPolicy
from schemagen.schema import SchemaChange, ToolSpec, build_tool
from schemagen.streaming import AsyncPartialStream, PartialStream
from schemagen.tokens import count_tokens
from schemagen.trace import AttemptRecord, Trace

__version__ = "0.1.0"

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
    "Client",
    "Completion",
    "ConfigurationError",
    "ContextOverflowError",
    "Doctor",
    "DoctorReport",
    "Example",
    "Extraction",
    "ExtractionError",
    "InvalidItem",
    "MissingDependencyError",
    "Partial",
    "PartialStream",
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
    "TemplateError",
    "TemplateSecurityError",
    "ToolCall",
    "ToolSpec",
    "Trace",
    "TransportError",
    "TruncatedError",
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
