"""Reading logs: formats (OpenAI, ShareGPT, Anthropic, tau-bench, Parquet) and streaming ingest."""
