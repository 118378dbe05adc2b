"""Log formats: opening (plain, gzip, zstd), detecting and reading records as OpenAI-shaped dicts.

Every reader yields ``RawRecord``s: where the record came from (line or row number, or the
record's place in a JSON document's list) and either an OpenAI-shaped record ``{"id"?,
"messages": [...], "tools"?, "metadata"?, ...}`` or the reason it could not be turned into one.
Readers stream: one line or one Parquet batch at a time (a JSON document is read whole). The
shapes of the messages themselves (tool calls without ids, Anthropic and Gemini tool blocks, ...)
are made OpenAI-shaped by ``messages.normalize`` when ingest validates them.

Formats (``FORMATS``):

- ``openai``       OpenAI chat JSONL: ``{"messages": [{role, content, tool_calls?, tool_call_id?}]}``;
                   also Anthropic Messages (``system``) and Gemini (``contents``) records
- ``sharegpt``     ``{"conversations": [{"from": "human"|"gpt"|"system"|..., "value": str}]}``
- ``anthropic``    ``{"chosen"|"transcript"|"text": "\\n\\nHuman: ...\\n\\nAssistant: ..."}`` (hh-rlhf)
- ``taubench``     ``{"task_id", "trial", "reward", "info", "traj": [OpenAI messages]}``
- ``openai_batch`` Batch API lines ``{"custom_id", "body": {"messages"}, "response"?}``, stored chat completions
- ``lmsys``        LMSYS-Chat-1M / WildChat ``{"conversation_id"|"conversation_hash", "model", "conversation"}``
- ``langfuse``     Langfuse traces (with ``observations``) and generation observations
- ``langsmith``    LangSmith ``llm`` runs (``inputs.messages``, ``outputs.generations``)
- ``otel``         OpenTelemetry GenAI spans, OTLP JSON (``{"resourceSpans": [...]}``, one per line)
- ``json``         a JSON document: a top-level array or an object holding a list of records
- ``mapped``       records of any layout through a ``documents.FieldMap`` (messages, role, content fields)
- ``huggingface``  Hugging Face chat datasets in Parquet (a ``messages`` column)
- ``parquet``      the project's own conversation schema (conversation_id, messages, tools, metadata, ...)
"""

from __future__ import annotations

from deploysim.logs.formats.base import (
    FORMATS,
    FormatError,
    RawRecord,
    RecordError,
    StreamError,
    detect_format,
    open_binary,
    read_records,
)
from deploysim.logs.formats.documents import FieldMap

__all__ = [
    "FORMATS",
    "FieldMap",
    "FormatError",
    "RawRecord",
    "RecordError",
    "StreamError",
    "detect_format",
    "open_binary",
    "read_records",
]
