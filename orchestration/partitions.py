import dagster as dg

CANDIDATES = "candidates"
candidates = dg.DynamicPartitionsDefinition(name=CANDIDATES)
