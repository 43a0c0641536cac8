"""schemagen: a Pydantic model in, a validated instance out."""

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

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "BudgetExceeded",
    "Completion",
    "ConfigurationError",
    "ContextOverflowError",
    "ExtractionError",
    "MissingDependencyError",
    "RateLimitError",
    "RefusalError",
    "Request",
    "RequestRejectedError",
    "SchemaError",
    "SchemagenError",
    "ServerError",
    "TemplateError",
    "TemplateSecurityError",
    "ToolCall",
    "TransportError",
    "TruncatedError",
    "Usage",
    "__version__",
]
