"""Grading: the behaviour taxonomy, rule graders, the LLM judge, human labels and calibration."""
