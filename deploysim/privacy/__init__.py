"""Privacy: personal-data detectors, NER, redaction policies and residual scans."""
