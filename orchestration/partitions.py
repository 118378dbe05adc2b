import dagster as dg

candidates = dg.DynamicPartitionsDefinition(name="candidates")
