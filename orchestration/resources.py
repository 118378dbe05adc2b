"""Resources: the run's settings (from environment variables) and dbt."""
import os
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject

ROOT = Path(__file__).resolve().parent.parent
# The library and dbt read the data directory from DEPLOYSIM_HOME; make it absolute once.
os.environ["DEPLOYSIM_HOME"] = str(Path(os.environ.get("DEPLOYSIM_HOME", ROOT / ".deploysim")).resolve())

# dbt from the same environment as this interpreter, whether or not the venv is activated
# (dagster-dbt's manifest preparation under `dagster dev` looks for `dbt` on PATH).
_BIN = str(Path(sys.executable).parent)
DBT = str(Path(_BIN) / "dbt")
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")
dbt_project = DbtProject(project_dir=ROOT / "dbt", profiles_dir=ROOT / "dbt")
dbt_project.prepare_if_dev()


class Settings(dg.ConfigurableResource):
    """What a simulation reads and how it samples; every field can come from the environment."""

    logs: str  # file, directory or glob (comma-separated)
    sample_size: int = 1000
    seed: int = 7
    purge_raw: str = "false"  # "true" deletes raw ingest output after redaction
    min_completeness_pct: int = 95  # replay completeness a run needs, in percent


DEFAULTS = {
    "DEPLOYSIM_LOGS": str(Path(os.environ["DEPLOYSIM_HOME"]) / "raw" / "logs"),
    "DEPLOYSIM_SAMPLE_SIZE": "1000",
    "DEPLOYSIM_SEED": "7",
    "DEPLOYSIM_PURGE_RAW": "false",
    "DEPLOYSIM_MIN_COMPLETENESS_PCT": "95",
}
for _k, _v in DEFAULTS.items():
    os.environ.setdefault(_k, _v)


def settings_from_env() -> Settings:
    return Settings(
        logs=dg.EnvVar("DEPLOYSIM_LOGS"),
        sample_size=dg.EnvVar.int("DEPLOYSIM_SAMPLE_SIZE"),
        seed=dg.EnvVar.int("DEPLOYSIM_SEED"),
        purge_raw=dg.EnvVar("DEPLOYSIM_PURGE_RAW"),
        min_completeness_pct=dg.EnvVar.int("DEPLOYSIM_MIN_COMPLETENESS_PCT"),
    )


def resources() -> dict:
    return {"settings": settings_from_env(), "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT)}
