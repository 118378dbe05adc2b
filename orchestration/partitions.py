import dagster as dg

from deploysim.settings import traffic_start

CANDIDATES = "candidates"
candidates = dg.DynamicPartitionsDefinition(name=CANDIDATES)

# The traffic by day (UTC), from DEPLOYSIM_TRAFFIC_START to today included.
days = dg.DailyPartitionsDefinition(start_date=traffic_start(), end_offset=1)
DAILY = ("ingest", "redact")  # the traffic's assets partitioned by day
