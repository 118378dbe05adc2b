"""Privacy: personal-data detectors, NER, redaction policies and residual scans.

detectors (deterministic detectors, ``Span``, ``find_pii``), ner (names, locations and
organisations with spaCy), policies (``RedactConfig``, replace/mask/hash/drop, keyed pseudonyms,
time coarsening), placeholders (``PlaceholderState``: numbering within a conversation), fields (the
text fields of a record, in redaction order), redaction (``redact_text``, ``Redactor``,
``redact_conversations``, ``iter_redacted`` with worker processes), scan (residual-PII scans).
"""
