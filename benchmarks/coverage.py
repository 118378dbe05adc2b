"""How often the reported 95% intervals cover the reference endpoint's configured rates.

Runs the library pipeline (no Dagster, no dbt) on demo logs for several seeds against the
reference endpoint over HTTP and prints, per seed, which (candidate, behaviour) intervals
miss the configured rate. Usage: python benchmarks/coverage.py [n_seeds] [demo_size]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def run(seed: int, size: int) -> list[tuple[str, str, float, float, float]]:
    from deploysim import lake, pipeline
    from deploysim.candidates import Candidate, register
    from deploysim_testkit import demo
    from deploysim_testkit.endpoint import PROFILES, start_in_thread

    with tempfile.TemporaryDirectory() as home:
        os.environ["DEPLOYSIM_HOME"] = home
        demo.generate(Path(home) / "raw", n=size, seed=seed)
        pipeline.run_ingest(str(Path(home) / "raw" / "logs"))
        pipeline.run_redact()
        pipeline.run_sample(size // 2, seed)
        out = []
        with start_in_thread() as server:
            for name in ("steady", "regressing"):
                register(Candidate(name=name, base_url=server.base_url, model=name))
                pipeline.run_replay(name)
                pipeline.run_grade(name)
                pipeline.run_estimate(name)
                for e in lake.read_rows(lake.lake_path("estimate", name)):
                    truth = getattr(PROFILES[name], e["behaviour"])
                    out.append((name, e["behaviour"], truth, e["ci_low"], e["ci_high"]))
        return out


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    covered = total = 0
    for seed in range(1, seeds + 1):
        rows = run(seed, size)
        misses = [f"{c}/{b}: {t:.3f} not in [{lo:.3f}, {hi:.3f}]" for c, b, t, lo, hi in rows if not lo <= t <= hi]
        covered += len(rows) - len(misses)
        total += len(rows)
        print(f"seed {seed}: {len(rows) - len(misses)}/{len(rows)} covered  {'; '.join(misses)}", flush=True)
    print(f"overall: {covered}/{total} = {covered / total:.1%} of 95% intervals cover the configured rate")


if __name__ == "__main__":
    main()
