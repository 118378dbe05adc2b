"""A small data directory for tests of the CLI: demo logs, the environment pointing at them (judge,
labels, observed logs and DAGSTER_PG_URL unset), and the reference endpoint running on 127.0.0.1."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def small_home(home: Path, n: int = 240, seed: int = 11, profiles=None, **env: str) -> Iterator:
    """Yield the running endpoint; the environment is restored afterwards.
    env: extra variables (DEPLOYSIM_*, DAGSTER_PG_URL)."""
    from deploysim_testkit import demo
    from deploysim_testkit.endpoint import start_in_thread

    old = dict(os.environ)
    # DAGSTER_PG_URL too: a developer's Postgres instance is not the test's (tests/test_postgres.py passes its own)
    unset = (
        "DEPLOYSIM_JUDGE_MODEL",
        "DEPLOYSIM_JUDGE_BASE_URL",
        "DEPLOYSIM_LABELS",
        "DEPLOYSIM_OBSERVED_LOGS",
        "DAGSTER_PG_URL",
    )
    for k in unset:
        os.environ.pop(k, None)
    os.environ.update(
        DEPLOYSIM_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        DEPLOYSIM_LOGS=str(home / "raw" / "logs"),
        DEPLOYSIM_SAMPLE_SIZE="60",
        DEPLOYSIM_SEED="7",
        **env,
    )
    try:
        demo.generate(home / "raw", n=n, seed=seed)
        with start_in_thread(profiles=profiles) as server:
            yield server
    finally:
        os.environ.clear()
        os.environ.update(old)


def isolated_env(home: Path, **env: str) -> dict[str, str]:
    """Drop every DEPLOYSIM_* variable, point DEPLOYSIM_HOME and DEPLOYSIM_LOGS at home, set env; returns
    the environment as it was, for restore_env."""
    old = dict(os.environ)
    for k in [k for k in os.environ if k.startswith("DEPLOYSIM_")]:
        del os.environ[k]
    os.environ.update(DEPLOYSIM_HOME=str(home), DEPLOYSIM_LOGS=str(home / "raw" / "logs"), **env)
    return old


def restore_env(old: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(old)
