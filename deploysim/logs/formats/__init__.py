"""Log formats: opening (plain, gzip, zstd), detecting and reading records as OpenAI-shaped dicts.

Every reader yields ``RawRecord``s: where the record came from (line or row number) and either
an OpenAI-shaped record ``{"id"?, "messages": [...], "tools"?, "metadata"?, ...}`` or the reason
it could not be turned into one. Readers stream: one line or one Parquet batch at a time.

Formats (``FORMATS``):

- ``openai``    OpenAI chat JSONL: ``{"messages": [{role, content, tool_calls?, tool_call_id?}]}``
- ``sharegpt``  ``{"conversations": [{"from": "human"|"gpt"|"system"|..., "value": str}]}``
- ``anthropic`` ``{"chosen"|"transcript"|"text": "\\n\\nHuman: ...\\n\\nAssistant: ..."}`` (hh-rlhf)
- ``taubench``  ``{"task_id", "trial", "reward", "info", "traj": [OpenAI messages]}``
- ``parquet``   the project's own conversation schema (conversation_id, messages, tools, metadata, ...)
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

__all__ = [
    "FORMATS",
    "FormatError",
    "RawRecord",
    "RecordError",
    "StreamError",
    "detect_format",
    "open_binary",
    "read_records",
]
