"""Estimation: prevalence with intervals, paired differences, planning, the forecast scorecard."""
