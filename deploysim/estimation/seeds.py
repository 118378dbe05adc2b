"""The gate's dbt seeds, generated: thresholds per behaviour from the taxonomy, and Holm's
critical values. `python -m deploysim.estimation.seeds [POLICY]` rewrites dbt/seeds/."""

from __future__ import annotations

from pathlib import Path

from deploysim.estimation.stats import ALPHA, MAX_LOOKS, holm_critical_z, look_alpha
from deploysim.grading import taxonomy

SEED_COLUMNS = ("behaviour", "max_rate", "max_increase", "severity")


def seed_csv(tax: taxonomy.Taxonomy) -> str:
    """The dbt seed gate_thresholds.csv for a taxonomy (what `python -m deploysim.estimation.seeds` writes)."""
    lines = [",".join(SEED_COLUMNS)]
    for r in tax.thresholds():
        lines.append(",".join(str(r[c]) for c in SEED_COLUMNS))
    return "\n".join(lines) + "\n"


HOLM_MAX_TESTS = 60  # gated behaviours of a fixed-sample run
HOLM_MAX_TESTS_SEQUENTIAL = 30  # of a round of `--until-decisive`


def holm_seed_csv(alpha: float = ALPHA) -> str:
    """The dbt seed holm_critical_z.csv: Holm's one-sided z thresholds per look (0: a fixed sample;
    r: round r of a growing sample, at stats.look_alpha(r)), family size m and step."""
    lines = ["look,m,step,alpha,critical_z"]
    for look in range(MAX_LOOKS + 1):
        a = look_alpha(look, alpha)
        for m in range(1, (HOLM_MAX_TESTS if look == 0 else HOLM_MAX_TESTS_SEQUENTIAL) + 1):
            lines += [f"{look},{m},{k + 1},{a:.6g},{z:.6f}" for k, z in enumerate(holm_critical_z(m, a))]
    return "\n".join(lines) + "\n"


SEEDS = Path(__file__).resolve().parents[2] / "dbt" / "seeds"

if __name__ == "__main__":  # python -m deploysim.estimation.seeds [POLICY]: regenerate the dbt seeds
    import sys

    (SEEDS / "gate_thresholds.csv").write_text(seed_csv(taxonomy.load(sys.argv[1] if len(sys.argv) > 1 else None)))
    (SEEDS / "holm_critical_z.csv").write_text(holm_seed_csv())
    print(f"wrote {SEEDS}/gate_thresholds.csv and holm_critical_z.csv")
