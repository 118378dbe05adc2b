"""The Dagster instance's dagster.yaml: SQLite by default, Postgres and the run queue with DAGSTER_PG_URL.

`python -m orchestration.instance` writes it (`make dev` does, before `dagster dev`). The URL is read
by Dagster from the environment when the instance loads ({env: DAGSTER_PG_URL}): no password is ever
written to a file.
"""

from __future__ import annotations

import os
from pathlib import Path

from deploysim import settings

PG_URL_ENV = "DAGSTER_PG_URL"
MARK = "# written by deploysim (orchestration/instance.py); remove this line to keep your own edits\n"
OLD_DEFAULT = "telemetry:\n  enabled: false\n"  # what earlier versions wrote

SQLITE = MARK + OLD_DEFAULT

# One run at a time: the runs share one data directory, whose DuckDB warehouse has a single writer.
POSTGRES = (
    MARK
    + f"""storage:
  postgres:
    postgres_url:
      env: {PG_URL_ENV}
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 1
telemetry:
  enabled: false
"""
)


def dagster_home() -> Path:
    """DAGSTER_HOME, default <DEPLOYSIM_HOME>/dagster."""
    return Path(os.environ.get("DAGSTER_HOME") or settings.home() / "dagster")


def wanted() -> str:
    """The dagster.yaml for this environment."""
    return POSTGRES if os.environ.get(PG_URL_ENV) else SQLITE


def ensure_config(home: Path) -> Path:
    """Write <home>/dagster.yaml when missing or when it is one deploysim wrote for another
    environment (SQLite <-> Postgres); a file someone wrote by hand is left alone."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    text = path.read_text() if path.exists() else None
    ours = text is None or text == OLD_DEFAULT or text.startswith(MARK)
    if ours and text != wanted():
        path.write_text(wanted())
    return path


def main() -> None:
    path = ensure_config(dagster_home())
    kinds = {POSTGRES: "postgres from DAGSTER_PG_URL, with the run queue", SQLITE: "sqlite"}
    print(f"dagster instance: {path} ({kinds.get(path.read_text(), 'your own file, left as it is')})")


if __name__ == "__main__":
    main()
