"""Resources: the run's settings and dbt.

Importing this module changes nothing: no environment variable, no PATH, no dbt preparation.
The dbt project comes from a cached factory (prepared only under `dagster dev`).
"""

import os
import sys
from functools import cache
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject

from deploysim import settings as deploysim_settings

ROOT = Path(__file__).resolve().parent.parent
DBT = str(Path(sys.executable).parent / "dbt")  # dbt of this interpreter's environment, venv activated or not


@cache
def dbt_project() -> DbtProject:
    project = DbtProject(project_dir=ROOT / "dbt", profiles_dir=ROOT / "dbt")
    if os.getenv("DAGSTER_IS_DEV_CLI"):  # `dagster dev` re-parses (edits show); `make setup` prepares it otherwise
        reparse(project)
    return project


def _newest_source(project_dir: Path) -> float:
    files = [p for d in ("models", "macros", "seeds", "tests") for p in (project_dir / d).rglob("*") if p.is_file()]
    files += [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    return max((p.stat().st_mtime for p in files if p.exists()), default=0.0)


def reparse(project: DbtProject) -> None:
    """`dbt parse` when a dbt file is newer than the manifest. Every process that loads the definitions
    under `dagster dev` comes here (webserver, daemon, each step's subprocess), so one parses at a time
    (a file lock), into its own directory, and the manifest is swapped in whole: a reader never sees a
    half-written one. With this environment's dbt (prepare_if_dev looks for `dbt` on PATH)."""
    import shutil
    import tempfile

    from filelock import FileLock

    manifest = Path(project.manifest_path)
    manifest.parent.mkdir(parents=True, exist_ok=True)

    def fresh() -> bool:
        return manifest.exists() and manifest.stat().st_mtime >= _newest_source(Path(project.project_dir))

    if fresh():
        return
    with FileLock(str(manifest.parent / ".parse.lock")):
        if fresh():
            return
        tmp = Path(tempfile.mkdtemp(prefix="parse-", dir=manifest.parent))
        try:
            DbtCliResource(project_dir=project, dbt_executable=DBT).cli(["parse", "--quiet"], target_path=tmp).wait()
            os.replace(tmp / "manifest.json", manifest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Settings(dg.ConfigurableResource):
    """Every deploysim setting (deploysim.settings.Settings), shown in the launchpad. A field left empty
    takes its environment variable (DEPLOYSIM_<FIELD>), else the default. The data directory
    (DEPLOYSIM_HOME) and the redaction secret are set in the environment only."""

    logs: str | None = None
    log_format: str | None = None
    records_path: str | None = None
    messages_field: str | None = None
    role_field: str | None = None
    content_field: str | None = None
    max_message_chars: int | None = None
    sample_size: int | None = None
    sample_days: int | None = None
    seed: int | None = None
    purge_raw: bool | None = None
    redact_ner: bool | None = None
    ner_model: str | None = None
    ner_cache: int | None = None
    redact_policy: str | None = None
    time_granularity: str | None = None
    metadata_allow: str | None = None
    phone_regions: str | None = None
    min_completeness_pct: float | None = None
    taxonomy: str | None = None
    labels: str | None = None
    observed_logs: str | None = None
    judge_model: str | None = None
    judge_base_url: str | None = None
    judge_api_key_env: str | None = None
    judge_samples: int | None = None
    judge_workers: int | None = None
    judge_cache: str | None = None

    def resolve(self) -> deploysim_settings.Settings:
        """The settings this run evaluates with: these fields over the environment over the defaults."""
        return deploysim_settings.load(**self.model_dump())

    @classmethod
    def of(cls, s: deploysim_settings.Settings) -> "Settings":
        """The resource for settings built elsewhere (the CLI's flags over the environment)."""
        fields = set(cls.model_fields)
        return cls(**{k: v for k, v in s.model_dump().items() if k in fields})


def resources(settings: deploysim_settings.Settings | None = None) -> dict:
    return {
        "settings": Settings.of(settings) if settings else Settings(),
        "dbt": DbtCliResource(project_dir=dbt_project(), dbt_executable=DBT),
    }
