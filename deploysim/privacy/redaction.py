"""Redacting text, conversations and streams of conversations.

``redact_text`` replaces every detected value with its placeholder. The ``Redactor`` redacts every
field of a record (deploysim.privacy.fields), with NER batched over many conversations, the
``drop`` policy, names found anywhere replaced everywhere, and counts: values replaced per entity
type plus "field:<label>" for fields outside the message text that changed (``split_counts``).
``redact_metadata`` coarsens the timestamp, hashes the user id and keeps only the allowed keys.
``redact_conversation``, ``redact_conversations`` and ``iter_redacted`` (batch by batch,
optionally in worker processes) are the entry points. Text already holding placeholders is never
re-redacted.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

from deploysim.privacy.detectors import (
    Span,
    key_context_spans,
    quasi_candidates,
    resolve_spans,
    structured_spans,
    user_id_spans,
    using_phone_regions,
)
from deploysim.privacy.fields import Field, conversation_fields, map_fields, ner_worthy
from deploysim.privacy.placeholders import PlaceholderState
from deploysim.privacy.policies import RedactConfig, coarsen_time, default_config, hash_identifier, hash_user_id
from deploysim.schemas import Conversation

FIELD_PREFIX = "field:"  # counter keys "field:<label>": conversations in which that field outside the text changed


def _apply(text: str, spans: list[Span], state: PlaceholderState) -> str:
    out: list[str] = []
    pos = 0
    for span in spans:
        out.append(text[pos : span.start])
        out.append(state.placeholder(span.type, span.value))
        state.found[span.type] += 1
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def redact_text(text: str | None, state: PlaceholderState) -> str | None:
    """Text with every detected value (and every name the state already knows) replaced by its
    placeholder (None stays None). Deterministic detectors only: NER runs per conversation."""
    if not text:
        return text
    spans = resolve_spans(text, list(structured_spans(text)) + state.known_spans(text))
    return _apply(text, spans, state)


def redact_metadata(meta: dict[str, Any], config: RedactConfig | None = None) -> dict[str, Any]:
    """Timestamp coarsened, user_id hashed with the secret, allowed keys kept (text redacted),
    everything else dropped."""
    config = config or default_config()
    out: dict[str, Any] = {}
    if (when := coarsen_time(meta.get("timestamp"), config.time_granularity)) is not None:
        out["timestamp"] = when
    if meta.get("user_id") not in (None, ""):
        # prefixed: 16 hex can be all digits and read as a card number (about 1 user in 20,000)
        out["user_id"] = "user_" + hash_user_id(meta["user_id"], config)
    state = PlaceholderState(config=config)
    for key in config.metadata_allow:
        if key in ("timestamp", "user_id") or key not in meta:
            continue
        val = meta[key]
        if isinstance(val, (bool, int, float)) or val is None:
            out[key] = val
        elif isinstance(val, str):
            out[key] = redact_text(val, state)
        elif isinstance(val, (dict, list)):
            out[key] = json.loads(redact_text(json.dumps(val, ensure_ascii=False), state) or "null")
    return out


_REPEATING = ("tools", "topic", "surface", "tool_calls.name", "messages.name")  # labels of texts that repeat


def _candidates(text: str, quasi: bool) -> list[Span]:
    return list(structured_spans(text)) + (quasi_candidates(text) if quasi else [])


@lru_cache(maxsize=20000)
def _resolved_cached(text: str, regions: tuple[str, ...], quasi: bool) -> tuple[Span, ...]:
    """The resolved spans of a text that repeats across conversations (tool schemas)."""
    return tuple(resolve_spans(text, _candidates(text, quasi)))


class Redactor:
    """Redacts conversations with one configuration; NER runs batched over many conversations."""

    def __init__(self, config: RedactConfig | None = None) -> None:
        self.config = config or default_config()
        if self.config.ner:
            from deploysim.privacy import ner

            ner.load(self.config.ner_model)  # fail early, with install advice, if the model is missing

    def spans(
        self,
        texts: Sequence[str | None],
        ner_on: Sequence[bool] | None = None,
        cached: Sequence[bool] | None = None,
        quasi_on: Sequence[bool] | None = None,
    ) -> list[list[Span]]:
        """For each text, its non-overlapping spans (deterministic detectors, then NER when on,
        batched over all the texts; ``ner_on`` limits NER to some texts and ``quasi_on`` the
        quasi-identifiers, ``cached`` marks texts that repeat across conversations, such as tool
        schemas)."""
        out: list[list[Span]] = []
        regions = self.config.phone_regions
        with using_phone_regions(regions):
            for i, t in enumerate(texts):
                if not t:
                    out.append([])
                else:
                    quasi = self.config.quasi and (quasi_on is None or quasi_on[i])
                    if cached and cached[i]:
                        out.append(list(_resolved_cached(t, regions, quasi)))
                    else:
                        out.append(resolve_spans(t, _candidates(t, quasi)))
        if self.config.ner:
            from deploysim.privacy import ner

            # each distinct text once: tool schemas and system prompts repeat across conversations
            index: dict[str, int] = {}
            for i, t in enumerate(texts):
                if t and (ner_on is None or ner_on[i]):
                    index.setdefault(t, len(index))
            found = ner.entities(list(index), self.config.ner_model)
            for i, t in enumerate(texts):
                if t and t in index and (ents := found[index[t]]):
                    out[i] = resolve_spans(t, out[i] + [Span(*e) for e in ents])
        return out

    def redact_many(self, convs: Sequence[Conversation]) -> list[tuple[Conversation | None, Counter[str]]]:
        """Each conversation redacted (None when a ``drop`` policy applies) with its counts: values
        replaced per entity type, and "field:<label>" for fields outside the message text that changed."""
        fields_per = [conversation_fields(c, self.config.metadata_allow) for c in convs]
        flat = [ft for fs in fields_per for ft in fs]
        texts = [t for _, t in flat]
        ner_on = [
            f.kind == "text" and bool(t) and (f.ner if f.ner is not None else ner_worthy(t or "")) for f, t in flat
        ]
        cached = [f.label in _REPEATING for f, _ in flat]
        quasi_on = [f.kind == "text" for f, _ in flat]  # ids and tool names: direct identifiers only
        spans_flat = self.spans(texts, ner_on, cached, quasi_on)
        out: list[tuple[Conversation | None, Counter[str]]] = []
        k = 0
        for conv, fields in zip(convs, fields_per):
            spans = spans_flat[k : k + len(fields)]
            k += len(fields)
            out.append(self._one(conv, fields, spans))
        return out

    def _one(
        self, conv: Conversation, fields: list[tuple[Field, str | None]], spans: list[list[Span]]
    ) -> tuple[Conversation | None, Counter[str]]:
        texts = [t for _, t in fields]
        state = PlaceholderState.from_texts(texts, self.config)
        uid = conv.metadata.get("user_id")
        uid = str(uid) if isinstance(uid, (str, int)) and not isinstance(uid, bool) and len(str(uid)) >= 3 else None
        for i, ((f, t), ss) in enumerate(zip(fields, spans)):
            if not t:
                continue
            extra = (key_context_spans(f.key, t) if f.key else []) + (user_id_spans(t, uid) if uid else [])
            if extra:
                spans[i] = resolve_spans(t, ss + extra)
        drop = [t for t, pol in self.config.policies if pol == "drop"]
        found_types = {s.type for ss in spans for s in ss}
        if drop and found_types & set(drop):
            counts = Counter(s.type for ss in spans for s in ss)
            counts["conversations_dropped"] = 1
            return None, counts
        for ss in spans:
            for s in ss:
                state.remember(s)
        # second pass: names found anywhere in the conversation are replaced everywhere
        if state.known:
            for i, t in enumerate(texts):
                if t and (known := state.known_spans(t)):
                    spans[i] = resolve_spans(t, spans[i] + known)
        new: list[Any] = []
        changed: Counter[str] = Counter()
        for (f, t), ss in zip(fields, spans):
            if not t or not ss:
                new.append(t)
                continue
            if f.kind == "id":
                state.found.update(s.type for s in ss)
                value = hash_identifier(t, self.config)
            else:
                value = _apply(t, ss, state)
            new.append(value)
            if f.label and value != t:
                changed[FIELD_PREFIX + f.label] = 1
        if "field:tools" in changed:
            it = iter(new)
            update = map_fields(conv, self.config.metadata_allow, lambda f, text: next(it))
        else:  # the tools are kept as they are (most often: they repeat across conversations)
            it = iter([v for (f, _), v in zip(fields, new) if f.label != "tools"])
            update = map_fields(conv, self.config.metadata_allow, lambda f, text: next(it), conv.tools)
        extra = update.pop("metadata_extra")
        meta = redact_metadata({k: v for k, v in conv.metadata.items() if k not in extra}, self.config) | extra
        counts = Counter(state.found) + changed
        return conv.model_copy(update=update | {"metadata": meta}), counts


def split_counts(counts: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(values replaced per entity type, conversations changed per field outside the message text)."""
    types = {k: n for k, n in counts.items() if not k.startswith(FIELD_PREFIX)}
    fields = {k[len(FIELD_PREFIX) :]: n for k, n in counts.items() if k.startswith(FIELD_PREFIX)}
    return types, fields


# ---------------------------------------------------------------------------- conversations


def redact_conversation(
    conv: Conversation, config: RedactConfig | None = None
) -> tuple[Conversation | None, Counter[str]]:
    """A copy with every text field redacted (contents, tool-call arguments and results, tool
    schemas, ids, topic, surface, allowed metadata), and the number of values replaced per entity
    type plus "field:<label>" for fields outside the message text that changed (None instead of
    the copy when a ``drop`` policy applies)."""
    return Redactor(config).redact_many([conv])[0]


def redact_conversations(
    convs: Iterable[Conversation], config: RedactConfig | None = None, batch_size: int = 256
) -> tuple[list[Conversation], Counter[str]]:
    """Redact each conversation (numbering restarts per conversation); total counts per type.
    Dropped conversations are left out and counted as ``conversations_dropped``."""
    total: Counter[str] = Counter()
    out: list[Conversation] = []
    for red, counts in iter_redacted(convs, config, batch_size):
        total.update(counts)
        if red is not None:
            out.append(red)
    return out, total


def _batches(convs: Iterable[Conversation], size: int) -> Iterable[list[Conversation]]:
    batch: list[Conversation] = []
    for conv in convs:
        batch.append(conv)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


_worker_redactor: Redactor | None = None


def _worker_init(config: RedactConfig) -> None:
    global _worker_redactor
    _worker_redactor = Redactor(config)


def _worker_batch(batch: list[Conversation]) -> list[tuple[Conversation | None, Counter[str]]]:
    assert _worker_redactor is not None
    return _worker_redactor.redact_many(batch)


def iter_redacted(
    convs: Iterable[Conversation], config: RedactConfig | None = None, batch_size: int = 256, workers: int = 1
) -> Iterable[tuple[Conversation | None, Counter[str]]]:
    """Stream of (redacted conversation or None if dropped, counts), batch by batch, in input order.

    ``workers`` > 1 redacts batches in that many worker processes (each with its own model when NER
    is on); at most two batches per worker are in flight, so memory stays bounded."""
    config = config or default_config()
    redactor = Redactor(config)  # loads (and checks) the NER model before any worker starts
    if workers <= 1:
        for batch in _batches(convs, batch_size):
            yield from redactor.redact_many(batch)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(config,)) as pool:
        pending: deque = deque()
        for batch in _batches(convs, batch_size):
            pending.append(pool.submit(_worker_batch, batch))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
