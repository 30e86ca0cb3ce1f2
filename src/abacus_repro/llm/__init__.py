"""LLM access for the judge, rewriting and test generation: one interface, three backends (see client.py), and
the OpenAI-compatible server a consumer job starts for itself (see server.py)."""

from .client import (
    BACKENDS,
    METADATA_NAME,
    LLMClient,
    LLMError,
    MetadataClient,
    OpenAIClient,
    PromptRejected,
    TransformersClient,
    get_client,
)
from .server import (
    ENGINES,
    Endpoint,
    LLMServerError,
    consumer_endpoint,
    needs_server,
    served,
    server_command,
    server_settings,
)

__all__ = [
    "BACKENDS",
    "ENGINES",
    "METADATA_NAME",
    "Endpoint",
    "LLMClient",
    "LLMError",
    "LLMServerError",
    "MetadataClient",
    "OpenAIClient",
    "PromptRejected",
    "TransformersClient",
    "consumer_endpoint",
    "get_client",
    "needs_server",
    "served",
    "server_command",
    "server_settings",
]
