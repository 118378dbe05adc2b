"""The gate's dbt seeds, generated: thresholds per behaviour from the taxonomy, and Holm's
critical values. `python -m deploysim.estimation.seeds [POLICY]` rewrites dbt/seeds/."""

from __future__ import annotations

from pathlib import Path

from deploysim.estimation.stats import holm_critical_z
from deploysim.grading import taxonomy

SEED_COLUMNS = ("behaviour", "max_rate", "max_increase", "severity")


def seed_csv(tax: taxonomy.Taxonomy) -> str:
    """The dbt seed gate_thresholds.csv for a taxonomy (what `python -m deploysim.estimation.seeds` writes)."""
    lines = [",".join(SEED_COLUMNS)]
    for r in tax.thresholds():
        lines.append(",".join(str(r[c]) for c in SEED_COLUMNS))
    return "\n".join(lines) + "\n"


HOLM_MAX_TESTS = 60


def holm_seed_csv(max_tests: int = HOLM_MAX_TESTS, alpha: float = 0.025) -> str:
    """The dbt seed holm_critical_z.csv: Holm's one-sided z thresholds per family size m and step."""
    lines = ["m,step,alpha,critical_z"]
    for m in range(1, max_tests + 1):
        lines += [f"{m},{k + 1},{alpha},{z:.6f}" for k, z in enumerate(holm_critical_z(m, alpha))]
    return "\n".join(lines) + "\n"


SEEDS = Path(__file__).resolve().parents[2] / "dbt" / "seeds"

if __name__ == "__main__":  # python -m deploysim.estimation.seeds [POLICY]: regenerate the dbt seeds
    import sys

    (SEEDS / "gate_thresholds.csv").write_text(seed_csv(taxonomy.load(sys.argv[1] if len(sys.argv) > 1 else None)))
    (SEEDS / "holm_critical_z.csv").write_text(holm_seed_csv())
    print(f"wrote {SEEDS}/gate_thresholds.csv and holm_critical_z.csv")
