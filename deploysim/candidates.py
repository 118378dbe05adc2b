"""The candidate registry: which models to simulate and how to reach them."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from deploysim.lake import home

PRODUCTION = "production"  # baseline meaning "the logged production responses"


class Candidate(BaseModel):
    name: str
    base_url: str  # OpenAI-compatible, e.g. http://127.0.0.1:8765/v1
    model: str
    api_key_env: str | None = None  # name of the env var holding the key, never the key
    temperature: float = 0.0
    max_tokens: int = 512
    concurrency: int = 16
    timeout_s: float = 30.0
    max_retries: int = 5
    baseline: str = PRODUCTION  # "production" or another candidate's name
    # replay pacing and accounting (deploysim.replay.ReplayOptions)
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    price_prompt_per_mtok: float = 0.0  # USD per million prompt tokens
    price_completion_per_mtok: float = 0.0
    max_steps: int = 8  # model calls per agent rollout
    tool_simulator_model: str | None = None  # model at the same base URL that simulates unrecorded tool calls

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError("candidate name must be 1-64 chars of letters, digits, '_', '.', '-'")
        return v

    @field_validator("base_url")
    @classmethod
    def _url_ok(cls, v: str) -> str:
        u = urlsplit(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("base_url must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8765/v1")
        return v

    def api_key(self) -> str | None:
        """The key from its env var; raises naming the variable (not the value) if unset."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise RuntimeError(f"candidate {self.name!r}: environment variable {self.api_key_env} is not set")
        return key

    @property
    def params(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}


class Registry(BaseModel):
    candidates: dict[str, Candidate] = Field(default_factory=dict)


def registry_path() -> Path:
    return home() / "candidates.json"


def load_registry() -> Registry:
    p = registry_path()
    return Registry.model_validate_json(p.read_text()) if p.exists() else Registry()


def register(c: Candidate) -> Registry:
    reg = load_registry()
    if c.baseline != PRODUCTION and c.baseline not in reg.candidates and c.baseline != c.name:
        raise ValueError(f"baseline {c.baseline!r} is neither 'production' nor a registered candidate")
    reg.candidates[c.name] = c
    p = registry_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(reg.model_dump(), indent=2))
    os.replace(tmp, p)
    return reg


def get(name: str) -> Candidate:
    reg = load_registry()
    if name not in reg.candidates:
        known = ", ".join(sorted(reg.candidates)) or "none"
        raise KeyError(f"unknown candidate {name!r} (registered: {known}); add it with `deploysim candidate add`")
    return reg.candidates[name]
