"""The candidate registry: which models to simulate and how to reach them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deploysim.errors import MissingKey, NotFound
from deploysim.lake import home, temp_path

PRODUCTION = "production"  # baseline meaning "the logged production responses"


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def looks_like_a_key(value: str) -> bool:
    """A value that looks like a credential rather than the name of a variable holding one."""
    if re.match(r"(sk|pk|rk|hf|gh[pousr]|xox[abp]|glpat|AKIA|AIza)[-_]?", value) and len(value) >= 20:
        return True
    if (
        len(value) >= 24
        and any(c.isdigit() for c in value)
        and any(c.islower() for c in value)
        and any(c.isupper() for c in value)
    ):
        return True  # long mixed-case alphanumerics: environment variable names are rarely like that
    return not _ENV_NAME.fullmatch(value) and len(value) >= 16


class Candidate(BaseModel):
    """A model to simulate. Every field is checked when the candidate is registered, not at run time."""

    model_config = ConfigDict(allow_inf_nan=False)

    name: str
    base_url: str  # OpenAI-compatible, e.g. http://127.0.0.1:8765/v1
    model: str = Field(min_length=1)
    api_key_env: str | None = None  # name of the env var holding the key, never the key
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1)
    concurrency: int = Field(16, ge=1, le=4096)
    timeout_s: float = Field(30.0, gt=0.0, le=3600.0)
    max_retries: int = Field(5, ge=0, le=20)
    baseline: str = PRODUCTION  # "production" or another candidate's name
    # replay pacing and accounting (deploysim.replay.engine.ReplayOptions)
    requests_per_minute: float | None = Field(None, gt=0.0)
    tokens_per_minute: float | None = Field(None, gt=0.0)
    price_prompt_per_mtok: float = Field(0.0, ge=0.0)  # USD per million prompt tokens
    price_completion_per_mtok: float = Field(0.0, ge=0.0)
    max_steps: int = Field(8, ge=1, le=1000)  # model calls per agent rollout
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
        if u.username or u.password:
            raise ValueError(
                "base_url must not carry credentials; name the key's environment variable with --api-key-env"
            )
        return v

    @field_validator("api_key_env")
    @classmethod
    def _env_name_ok(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if looks_like_a_key(v):  # never echoed: it may be the key itself
            raise ValueError(
                "api_key_env takes the NAME of an environment variable holding the key "
                "(e.g. OPENAI_API_KEY), and this looks like a key itself; it was not stored"
            )
        if not _ENV_NAME.fullmatch(v):
            raise ValueError("api_key_env must be an environment variable name (letters, digits, '_')")
        return v

    @model_validator(mode="after")
    def _baseline_ok(self) -> "Candidate":
        if self.baseline == self.name:
            raise ValueError("a candidate cannot be its own baseline")
        return self

    def api_key(self) -> str | None:
        """The key from its env var; raises naming the variable (not the value) if unset."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise MissingKey(
                f"candidate {self.name!r}: environment variable {self.api_key_env} is not set; export it, "
                "or re-register the candidate with --api-key-env naming the variable that holds its key"
            )
        return key

    @property
    def params(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}


class Registry(BaseModel):
    candidates: dict[str, Candidate] = Field(default_factory=dict)
    removed: list[str] = Field(default_factory=list, exclude=True)  # dropped on load, with the reason


def registry_path() -> Path:
    return home() / "candidates.json"


def load_registry() -> Registry:
    """The registry. An entry whose api_key_env holds what looks like a key (stored by an older version)
    is removed from the file, so the secret leaves the disk; `removed` says which (never the value)."""
    p = registry_path()
    if not p.exists():
        return Registry()
    raw = json.loads(p.read_text())
    cands = raw.get("candidates", {})
    leaked = [
        n for n, c in cands.items() if isinstance(c.get("api_key_env"), str) and looks_like_a_key(c["api_key_env"])
    ]
    for n in leaked:
        del cands[n]
    reg = Registry.model_validate(raw)
    if leaked:
        _write(reg)
        reg.removed = [
            f"candidate {n!r} was removed from the registry: its api_key_env held what looks like a key "
            f"(not shown); register it again with --api-key-env naming the variable"
            for n in leaked
        ]
    return reg


def _write(reg: Registry) -> None:
    p = registry_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(p)
    tmp.write_text(json.dumps(reg.model_dump(), indent=2))
    os.replace(tmp, p)


def register(c: Candidate) -> Registry:
    reg = load_registry()
    if c.baseline != PRODUCTION and c.baseline not in reg.candidates:
        raise ValueError(f"baseline {c.baseline!r} is neither 'production' nor a registered candidate")
    reg.candidates[c.name] = c
    _write(reg)
    return reg


def get(name: str) -> Candidate:
    reg = load_registry()
    if name not in reg.candidates:
        known = ", ".join(sorted(reg.candidates)) or "none"
        for why in reg.removed:
            if f"candidate {name!r}" in why:
                raise NotFound(why)
        raise NotFound(f"unknown candidate {name!r} (registered: {known}); add it with `deploysim candidate add`")
    return reg.candidates[name]
