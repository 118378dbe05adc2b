"""Pydantic schemas shared by every step."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: str = "{}"  # JSON text, as in the OpenAI API


class Message(BaseModel):
    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None  # role == "tool"
    name: str | None = None  # tool name on role == "tool"

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
            if self.name:
                out["name"] = self.name
        return out


class Conversation(BaseModel):
    conversation_id: str
    messages: list[Message]
    tools: list[dict[str, Any]] = Field(default_factory=list)  # OpenAI tool schemas
    topic: str = "general"
    surface: str = "chat"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("messages")
    @classmethod
    def _has_user_turn(cls, v: list[Message]) -> list[Message]:
        if not any(m.role == "user" for m in v):
            raise ValueError("conversation has no user message")
        return v

    @property
    def kind(self) -> Literal["chat", "agent"]:
        return "agent" if self.tools or any(m.tool_calls for m in self.messages) else "chat"

    def last_user_index(self) -> int:
        return max(i for i, m in enumerate(self.messages) if m.role == "user")

    def prefix(self) -> list[Message]:
        """Messages up to and including the last user turn: what replay sends."""
        return self.messages[: self.last_user_index() + 1]

    def logged_turn(self) -> list[Message]:
        """What production did after the last user turn (assistant turns, tool calls, results)."""
        return self.messages[self.last_user_index() + 1 :]


class QuarantineRecord(BaseModel):
    source_file: str
    line: int
    reason: str


class SampleRow(BaseModel):
    conversation_id: str
    stratum: str
    inclusion_prob: float
    population: int  # stratum size N_h
    sampled: int  # stratum sample size n_h
    day: str | None = None  # the day of traffic it was logged on (None: from before the traffic had days)


# recorded: from the logged trajectory (same name, canonicalised arguments); simulated: invented
# by the tool-simulator model; error: a deterministic error result (unknown tool, or the
# simulator failed); unavailable: the deterministic error result when no simulator is configured.
ToolSource = Literal["recorded", "simulated", "error", "unavailable"]


class ToolResultRecord(BaseModel):
    tool_call_id: str
    name: str
    arguments: str
    source: ToolSource
    content: str
    detail: str | None = None  # why an error result was given (never contains a key)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ReplayRecord(BaseModel):
    candidate: str
    conversation_id: str
    status: Literal["ok", "error"]
    error: str | None = None
    turn: list[Message] = Field(default_factory=list)  # new assistant/tool messages after the prefix
    tool_results: list[ToolResultRecord] = Field(default_factory=list)
    attempts: int = 0
    http_calls: int = 0
    cached_calls: int = 0
    latency_ms: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    user_turn: int | None = None  # index of the user message the replayed prefix ends with


class Grade(BaseModel):
    conversation_id: str
    system: Literal["candidate", "baseline"]
    behaviour: str
    grader: str
    applicable: bool
    flagged: bool
    detail: str = ""


class Estimate(BaseModel):
    candidate: str
    behaviour: str
    n_sampled: int
    n_applicable: int
    n_flagged: int
    rate: float
    ci_low: float
    ci_high: float
    baseline_rate: float
    baseline_ci_low: float
    baseline_ci_high: float
    baseline_flagged: int
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    diff_se: float | None = None  # standard error behind the difference's interval (gate tests)
    n_eff: float | None = None  # effective sample size of the candidate's interval
    ppi_rate: float | None = None  # grader-corrected rate (PPI++) where human labels exist
    ppi_ci_low: float | None = None
    ppi_ci_high: float | None = None
    n_labelled: int = 0  # human-labelled candidate turns behind ppi_*
    look: int = 0  # 0: a fixed sample; r: round r of a sample grown until the gate decides
    alpha: float = 0.025  # one-sided error of each interval bound at this look
    more_needed: int | None = None  # further conversations the planner expects to decide the rate (max_rate)


def conversation_to_row(c: Conversation) -> dict[str, Any]:
    """Flat Parquet row for a conversation (messages/tools/metadata as JSON text)."""
    return {
        "conversation_id": c.conversation_id,
        "topic": c.topic,
        "surface": c.surface,
        "kind": c.kind,
        "messages": [m.model_dump() for m in c.messages],
        "tools": c.tools,
        "metadata": c.metadata,
    }


def conversation_from_row(row: dict[str, Any]) -> Conversation:
    import json

    return Conversation(
        conversation_id=row["conversation_id"],
        topic=row["topic"],
        surface=row["surface"],
        messages=json.loads(row["messages"]),
        tools=json.loads(row["tools"]),
        metadata=json.loads(row["metadata"]),
    )
