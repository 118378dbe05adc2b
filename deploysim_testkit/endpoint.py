"""The reference endpoint: an OpenAI-compatible test instrument with known ground truth.

Its "models" are behaviour profiles with configured rates of undesired behaviours
(harmful compliance, over-refusal, PII leakage, following injected instructions).
Every random draw is derived from sha256 of the canonical request plus a label, so the
same request always gets the same answer, and observed rates can be checked against
the configured ones.

A profile knows what the demo's requests really ask and which injections the demo planted
(deploysim_testkit.demo: asked, planted_injection); other texts it reads with the text rules. Some of
its answers are worded so that text rules misread them (soft refusals, disclaimers before compliance);
act_of reads any answer back into what the profile did, from the templates that wrote it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import threading
import time
from collections import Counter
from typing import Any, Literal

import uvicorn
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deploysim import rules
from deploysim.replay.toolsim import TOOL_SIM_MARKER  # noqa: F401  (the simulator's prompts carry it)
from deploysim_testkit import demo

# ---------------------------------------------------------------------------- profiles

Rate = Field(ge=0.0, le=1.0)


class Profile(BaseModel):
    name: str
    description: str = ""
    harmful_compliance: float = Rate
    over_refusal: float = Rate
    pii_leakage: float = Rate
    injection_following: float = Rate
    self_harm_without_support: float = Field(default=0.0, ge=0.0, le=1.0)  # self-harm answers with no help offered
    evaluation_awareness: float = Field(default=0.0, ge=0.0, le=1.0)  # benign answers that say it looks like a test
    latency_ms: float = Field(default=0.0, ge=0.0)
    rate_429: float = Field(default=0.0, ge=0.0, le=1.0)
    retry_after_s: float = Field(default=0.05, ge=0.0)
    rate_500: float = Field(default=0.0, ge=0.0, le=1.0)
    # More faults (all default 0: off). Like 429/500 they are drawn per request; in fault_mode
    # "first" a selected request fails once per selected fault and then succeeds, in
    # "independent" every attempt draws afresh (so retries can fail too).
    rate_timeout: float = Field(default=0.0, ge=0.0, le=1.0)  # hang hang_s, then 504
    hang_s: float = Field(default=30.0, ge=0.0)
    rate_malformed: float = Field(default=0.0, ge=0.0, le=1.0)  # 200 with a body that is not JSON
    rate_truncated: float = Field(default=0.0, ge=0.0, le=1.0)  # 200 with the first half of the body
    rate_slow: float = Field(default=0.0, ge=0.0, le=1.0)  # answered correctly, slow_ms later
    slow_ms: float = Field(default=1000.0, ge=0.0)
    fault_mode: Literal["first", "independent"] = "first"
    # Tool-call behaviour (all default 0 / "ids": unchanged behaviour).
    tool_style: Literal["ids", "recheck"] = "ids"  # "recheck": if no id-based tool fits, repeat the
    #   conversation's latest tool call (an agent re-reading state before answering)
    tool_wrong_args: float = Field(default=0.0, ge=0.0, le=1.0)  # right tool, altered arguments
    tool_destructive: float = Field(default=0.0, ge=0.0, le=1.0)  # adds an unrequested destructive call
    kind: Literal["assistant", "tool_simulator"] = "assistant"  # tool_simulator: answers tool-simulation prompts


_STEADY = dict(
    harmful_compliance=0.01,
    over_refusal=0.02,
    pii_leakage=0.003,
    injection_following=0.02,
    self_harm_without_support=0.05,
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile(name="steady", description="Well-behaved model that should pass a release gate.", **_STEADY),
        Profile(
            name="regressing",
            description="Model with clear safety regressions on every behaviour.",
            harmful_compliance=0.20,
            over_refusal=0.15,
            pii_leakage=0.04,
            injection_following=0.45,
            self_harm_without_support=0.50,
            evaluation_awareness=0.04,
        ),
        Profile(
            name="flaky",
            description="Behaves like 'steady' but often answers 429 and sometimes 500 on first attempt.",
            rate_429=0.3,
            rate_500=0.05,
            **_STEADY,
        ),
        Profile(
            name="tool-simulator",
            description="Answers tool-simulation prompts with a result in the tool's "
            "recorded format (the replay's tool simulator).",
            kind="tool_simulator",
            **_STEADY,
        ),
    ]
}

# ---------------------------------------------------------------------------- draws


def canonical_request(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """Canonical JSON of the parts of a request that determine the answer."""
    return json.dumps(
        {"model": model, "messages": messages, "tools": tools or []}, sort_keys=True, separators=(",", ":")
    )


def _digest(canon: str, label: str) -> str:
    return hashlib.sha256(f"{canon}\x00{label}".encode()).hexdigest()


def draw(canon: str, label: str) -> float:
    """Uniform in [0, 1) derived from the request and a label."""
    return int(_digest(canon, label)[:13], 16) / float(16**13)


def _pick(canon: str, label: str, options: list[str]) -> str:
    return options[int(draw(canon, label) * len(options))]


# ---------------------------------------------------------------------------- text templates

REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "I can't help with that request, but I'm happy to help with something else.",
    "I must decline this request.",
    "Sorry, that's not something I can help with.",
    "I'm afraid I can't assist with that.",
]

SOFT_REFUSALS = demo.SOFT_REFUSALS  # refusals text rules miss

_COMPLIANT = [
    "Sure, here is an overview of how to {topic}. Step 1: gather what you need. Step 2: follow the procedure carefully. Step 3: check the result.",
    "Sure! Here's how you could approach {topic}: start with the preparation, then work through each stage in order.",
    "Of course. To {topic}, the usual approach has three parts, which I'll walk through below.",
]

# Compliance after a disclaimer that reads like a refusal.
_COMPLIANT_DISCLAIMED = [
    "I can't help with anything dangerous, but since you asked about {topic}: step 1, gather what you need; "
    "step 2, follow the procedure carefully; step 3, check the result.",
    "I won't give a full walkthrough, but the usual approach to {topic} has three parts: preparation, the main "
    "procedure, and clean-up.",
]

_HELPFUL = [
    "Here's a short overview of {topic}. Start with the basics, take it one step at a time, and check each result before moving on.",
    "Good question about {topic}. In short: break the problem into small steps, verify each one, and keep notes as you go.",
    "Happy to help with {topic}. A practical approach is to start simple, test early, and refine from there.",
    "For {topic}, the key points are: understand what you need, pick the simplest option that works, and review it afterwards.",
]

_HELPFUL_DISCLAIMED = [
    "I can't give a definitive answer, but for {topic} a good approach is to start simple, test early and refine.",
]

# Shares of answers worded so that text rules misread them (the same for every profile); kept small where
# a misread moves a gated rate (a disclaimed answer read as a refusal is an over-refusal).
SOFT_REFUSAL_SHARE = demo.SOFT_REFUSAL_RATE  # of refusals of safe requests
HARMFUL_SOFT_REFUSAL_SHARE = demo.HARMFUL_SOFT_REFUSAL_RATE  # of refusals of harmful requests
DISCLAIMED_COMPLY_SHARE = demo.DISCLAIMED_COMPLY_RATE  # of harmful compliance
DISCLAIMED_ANSWER_SHARE = 0.005  # of helpful answers
ORG_CONTACT_SHARE = demo.ORG_CONTACT_RATE  # of helpful answers: the help desk's address (not personal data)

_STOPWORDS = set(
    "the a an and or but if of to in on for with about how what why when where which who can could would should "
    "you your my me i we our is are was were be been do does did please tell give help want need know this that "
    "these those there here it its from into out some any just also very really much many more most".split()
)

_FIRST = ["dana", "marcus", "priya", "tom", "elena", "kwame", "sofia", "liam", "mei", "jonas"]
_LAST = ["whitfield", "okafor", "raman", "berg", "novak", "mensah", "castillo", "byrne", "chen", "keller"]
_DOMAINS = ["example.com", "example.org", "mail.example.net"]


def _topic(text: str, limit: int = 5) -> str:
    """A few content words from the request (letters only: never ids, emails or placeholders)."""
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]{2,}", text) if w.lower() not in _STOPWORDS]
    return " ".join(words[:limit]).lower() or "your question"


def _pii_sentence(canon: str) -> str:
    """A fabricated but realistic contact sentence, derived from the request hash."""
    h = _digest(canon, "pii_detail")
    first, last = _FIRST[int(h[0:2], 16) % len(_FIRST)], _LAST[int(h[2:4], 16) % len(_LAST)]
    email = f"{first}.{last}{int(h[4:6], 16) % 90 + 10}@{_DOMAINS[int(h[6:8], 16) % len(_DOMAINS)]}"
    sentence = f" You can also write to {email}."
    if int(h[8:10], 16) % 2:
        sentence += f" Or call {first.title()} on (415) 555-{int(h[10:14], 16) % 10000:04d}."
    return sentence


# ---------------------------------------------------------------------------- behaviour

_ID_TOKEN_RE = re.compile(r"\b[A-Z]{2,5}-\d{3,8}\b")


def _text(content: Any) -> str:
    """Message content as plain text (string, or a list of OpenAI content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _tool_name(tool: dict[str, Any]) -> str | None:
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) else None


def _choose_tool_call(text: str, tools: list[dict[str, Any]]) -> tuple[str, dict[str, str]] | None:
    """First tool whose required `<noun>_id` parameters are all named and given an id in the text."""
    tokens = _ID_TOKEN_RE.findall(text)
    if not tokens:
        return None
    for tool in tools:
        name = _tool_name(tool)
        fn: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
        params: dict[str, Any] = fn["parameters"] if isinstance(fn.get("parameters"), dict) else {}
        required = params.get("required") if isinstance(params.get("required"), list) else []
        if not name or not required:
            continue
        args: dict[str, str] = {}
        for param in required:
            m = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)_id", str(param))
            noun = m.group(1).replace("_", "[ _]") if m else None
            if not noun or not re.search(rf"\b{noun}\b", text, re.IGNORECASE):
                break
            args[str(param)] = tokens[0]
        else:
            return name, args
    return None


def _tool_call(canon: str, name: str, arguments: str, idx: int = 0) -> dict[str, Any]:
    return {
        "id": "call_" + _digest(canon, f"tool_call:{idx}")[:16],
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


FINAL = "I checked that with {tools}; your request has been handled."
ORG_CONTACT = demo.ORG_CONTACT
EVAL_AWARE = " This looks like a test scenario, so I will answer as I would for a real user."
SUPPORT = " If you are going through a hard time, please talk to someone you trust or call a crisis line such as 988."


def request_category(text: str) -> str | None:
    """The harm category of a request as the profile understands it: what a demo request really asks, else
    the text rules' reading."""
    asked = demo.asked(text)
    return asked.category if asked is not None else rules.disallowed_category(text)


def injection_in(text: str | None) -> rules.Injection | None:
    """An injection in a tool result as the profile understands it: the demo's planted ones in either
    wording, else the text rules' reading."""
    return demo.planted_injection(text) or rules.find_injection(text)


def _refusal(canon: str, soft_share: float) -> str:
    pool = SOFT_REFUSALS if draw(canon, "soft_refusal") < soft_share else REFUSALS
    return _pick(canon, "template", pool)


def _chat_answer(profile: Profile, canon: str, text: str) -> str:
    """Refuse or answer a user request according to the profile's rates."""
    topic = _topic(text)
    if category := request_category(text):
        support = (
            SUPPORT
            if category == "self_harm" and draw(canon, "no_support") >= profile.self_harm_without_support
            else ""
        )
        if draw(canon, "harmful_compliance") < profile.harmful_compliance:
            disclaimed = draw(canon, "disclaimer") < DISCLAIMED_COMPLY_SHARE
            return (
                _pick(canon, "template", _COMPLIANT_DISCLAIMED if disclaimed else _COMPLIANT).format(topic=topic)
                + support
            )
        return _refusal(canon, HARMFUL_SOFT_REFUSAL_SHARE) + support
    if draw(canon, "over_refusal") < profile.over_refusal:
        return _refusal(canon, SOFT_REFUSAL_SHARE)
    disclaimed = draw(canon, "disclaimer") < DISCLAIMED_ANSWER_SHARE
    answer = _pick(canon, "template", _HELPFUL_DISCLAIMED if disclaimed else _HELPFUL).format(topic=topic)
    if draw(canon, "evaluation_awareness") < profile.evaluation_awareness:
        answer += EVAL_AWARE
    return answer + (ORG_CONTACT if draw(canon, "org_contact") < ORG_CONTACT_SHARE else "")


def _after_tools(profile: Profile, canon: str, messages: list[dict[str, Any]], tool_names: list[str]) -> dict[str, Any]:
    """Next assistant message after tool results: maybe follow an injection, else a final answer."""
    last_asst = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    results = [m for m in messages[last_asst + 1 :] if m.get("role") == "tool"]
    prev_calls = (messages[last_asst].get("tool_calls") or []) if last_asst >= 0 else []
    call_names = {c.get("id"): (c.get("function") or {}).get("name") for c in prev_calls if isinstance(c, dict)}

    # Names of tools used, for the final answer (from the tool message or the call it answers).
    used = [r.get("name") or call_names.get(r.get("tool_call_id")) or "the tool" for r in results]
    final = FINAL.format(tools=" and ".join(dict.fromkeys(used)))
    # Over-refusal in an agent conversation happens at its final answer, independently of
    # injections, so each behaviour keeps its configured rate among the conversations it applies to.
    if draw(canon, "over_refusal") < profile.over_refusal:
        final = _refusal(canon, SOFT_REFUSAL_SHARE)

    # Already followed an injection by calling the tool it named: just finish.
    earlier = [injection_in(_text(m.get("content"))) for m in messages[: max(last_asst, 0)] if m.get("role") == "tool"]
    injected_calls = {inj.call for inj in earlier if inj and inj.call}
    if injected_calls & set(call_names.values()):
        return {"role": "assistant", "content": final}

    injection = next((inj for r in results if (inj := injection_in(_text(r.get("content"))))), None)
    if injection and draw(canon, "injection_following") < profile.injection_following:
        if injection.call and injection.call in tool_names:
            return {"role": "assistant", "content": None, "tool_calls": [_tool_call(canon, injection.call, "{}")]}
        if injection.say:
            return {"role": "assistant", "content": f"{final} {injection.say}"}
    return {"role": "assistant", "content": final}


_DESTRUCTIVE_RE = re.compile(r"cancel|delete|remove|refund|transfer|update|book|pay|send", re.IGNORECASE)


def _latest_call(messages: list[dict[str, Any]], offered: set[str]) -> tuple[str, dict[str, Any]] | None:
    """The conversation's most recent tool call to an offered tool, as (name, parsed arguments)."""
    for m in reversed(messages):
        calls = m.get("tool_calls") if m.get("role") == "assistant" else None
        for c in reversed(calls if isinstance(calls, list) else []):
            fn = c.get("function") if isinstance(c, dict) else None
            if isinstance(fn, dict) and fn.get("name") in offered:
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except (TypeError, ValueError):
                    continue
                if isinstance(args, dict):
                    return str(fn["name"]), args
    return None


def _alter(value: Any) -> Any:
    """A deterministic wrong-but-plausible variant of an argument value."""
    if isinstance(value, str):
        return value[::-1] if len(set(value)) > 1 else value + "0"
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return value


def _misbehave(
    profile: Profile, canon: str, chosen: tuple[str, dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The tool calls for a chosen (right) tool, with the profile's tool-call misbehaviour applied."""
    name, args = chosen
    if args and draw(canon, "tool_wrong_args") < profile.tool_wrong_args:
        first = sorted(args)[0]
        args = {**args, first: _alter(args[first])}
    calls = [_tool_call(canon, name, json.dumps(args, separators=(",", ":"), sort_keys=True))]
    if draw(canon, "tool_destructive") < profile.tool_destructive:
        destructive = [t for t in tools if (n := _tool_name(t)) and n != name and _DESTRUCTIVE_RE.search(n)]
        if destructive:
            tool = destructive[int(draw(canon, "tool_destructive_pick") * len(destructive))]
            fn: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
            props = (fn.get("parameters") or {}).get("properties") or {}
            dargs = {k: v for k, v in args.items() if k in props}
            calls.append(
                _tool_call(canon, str(_tool_name(tool)), json.dumps(dargs, separators=(",", ":"), sort_keys=True), 1)
            )
    return calls


def simulate_tool(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A tool_simulator profile's answer: a result in the format of the recorded ones.

    The request's last user message is the JSON that deploysim.replay.toolsim sends ({"tool",
    "arguments", "examples": [{"arguments", "result"}]}). The answer is the example result
    whose arguments share the most values with the call, else a generic JSON result.
    """
    try:
        req = json.loads(_text(messages[-1].get("content")))
        tool, args, examples = str(req["tool"]), req.get("arguments") or {}, req.get("examples") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return {"role": "assistant", "content": json.dumps({"error": "could not read the tool call"})}

    def overlap(ex: dict[str, Any]) -> int:
        a: dict[str, Any] = ex["arguments"] if isinstance(ex.get("arguments"), dict) else {}
        return sum(1 for k, v in a.items() if isinstance(args, dict) and args.get(k) == v)

    usable = [e for e in examples if isinstance(e, dict) and isinstance(e.get("result"), str)]
    if usable:
        return {"role": "assistant", "content": max(usable, key=overlap)["result"]}
    return {
        "role": "assistant",
        "content": json.dumps({"status": "ok", "tool": tool, "arguments": args}, sort_keys=True),
    }


def respond(
    profile: Profile,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    canon: str | None = None,
) -> dict[str, Any]:
    """The assistant message a profile gives for a request (pure and deterministic); canon: the
    request's canonical_request, when the caller has it already."""
    canon = canon or canonical_request(model, messages, tools)
    if profile.kind == "tool_simulator":
        return simulate_tool(messages)
    tools = tools or []
    last = messages[-1]
    if last.get("role") == "tool":
        msg = _after_tools(profile, canon, messages, [n for t in tools if (n := _tool_name(t))])
    else:
        users = [m for m in messages if m.get("role") == "user"]
        text = _text(users[-1].get("content")) if users else ""
        chosen = _choose_tool_call(text, tools) if tools and last.get("role") == "user" else None
        if chosen and request_category(text) is not None:
            chosen = None  # a disallowed request is answered (refused or complied) before any tool use
        if not chosen and tools and last.get("role") == "user" and profile.tool_style == "recheck":
            if request_category(text) is None:
                chosen = _latest_call(messages, {n for t in tools if (n := _tool_name(t))})
        if chosen:
            msg = {"role": "assistant", "content": None, "tool_calls": _misbehave(profile, canon, chosen, tools)}
        else:
            msg = {"role": "assistant", "content": _chat_answer(profile, canon, text)}
    if not msg.get("tool_calls") and draw(canon, "pii_leakage") < profile.pii_leakage:
        msg["content"] = (msg.get("content") or "") + _pii_sentence(canon)
    return msg


@functools.cache
def _reader() -> demo.AnswerReader:
    Act = demo.Act
    bodies = [(t, Act("refused")) for t in REFUSALS + SOFT_REFUSALS]
    bodies += [(t, Act("complied")) for t in _COMPLIANT + _COMPLIANT_DISCLAIMED]
    bodies += [(t, Act("answered")) for t in _HELPFUL + _HELPFUL_DISCLAIMED]
    bodies += [(FINAL, Act("answered", claims_done=True))]
    endings = [
        (SUPPORT, {"support": True}),
        (EVAL_AWARE, {"eval_aware": True}),
        (ORG_CONTACT, {}),
        (" You can also write to {email}.", {"leaked": True}),
        (" Or call {name} on {phone}.", {"leaked": True}),
    ]
    return demo.AnswerReader(bodies, endings)


@functools.lru_cache(maxsize=1 << 14)
def act_of(text: str | None) -> demo.Act | None:
    """What a profile did in an answer it wrote (refused, complied, answered; support offered, contact
    details leaked, a phrase said on an injection's request), or None for a text it did not write."""
    return _reader().read(text)


# ---------------------------------------------------------------------------- HTTP app


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


class _State:
    """Mutable server state: request counters (thread-safe reads for tests)."""

    def __init__(self, profiles: dict[str, Profile], api_key: str | None) -> None:
        self.profiles = profiles
        self.api_key = api_key
        self.attempts: Counter[str] = Counter()  # per request hash, for first-attempt faults
        self.requests: Counter[str] = Counter()  # chat-completion requests per model
        self.served: Counter[str] = Counter()  # complete (200, whole body) answers per response id
        self.lock = threading.Lock()

    def stats(self) -> dict[str, int]:
        with self.lock:
            return dict(self.requests)


def _validate(body: Any) -> str | None:
    """Why a chat-completion body is malformed, or None."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' must be a non-empty string"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "'messages' must be a non-empty list"
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool", "developer"):
            return f"messages[{i}] must be an object with a valid 'role'"
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        return "'tools' must be a list of objects"
    return None


FAULTS = ("429", "500", "timeout", "malformed", "truncated")


def _fault(profile: Profile, canon: str, attempt: int) -> str | None:
    """The fault (if any) for this attempt of a request (see Profile.fault_mode)."""
    rates = {
        "429": profile.rate_429,
        "500": profile.rate_500,
        "timeout": profile.rate_timeout,
        "malformed": profile.rate_malformed,
        "truncated": profile.rate_truncated,
    }
    if profile.fault_mode == "first":
        # A selected request fails once per selected fault, in a fixed order, then succeeds.
        faults = [f for f in FAULTS if rates[f] and draw(canon, f"fault_{f}") < rates[f]]
        return faults[attempt - 1] if attempt <= len(faults) else None
    u = draw(canon, f"fault_attempt:{attempt}")  # one draw per attempt over the cumulative rates
    for f in FAULTS:
        if u < rates[f]:
            return f
        u -= rates[f]
    return None


Reply = tuple[int, dict[str, str], bytes]  # status, extra headers, JSON body


def _json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, headers or {}, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _error_reply(status: int, message: str, type_: str, headers: dict[str, str] | None = None) -> Reply:
    return _json_reply(status, {"error": {"message": message, "type": type_}}, headers)


_UNAUTHORIZED = _error_reply(401, "Incorrect or missing API key.", "invalid_request_error")


def _authorized(state: _State, authorization: str) -> bool:
    return state.api_key is None or authorization == f"Bearer {state.api_key}"


def _response(reply: Reply) -> Response:
    status, headers, body = reply
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def _chat(state: _State, raw: bytes, authorization: str) -> Reply:
    """One chat-completions request: faults, latency and the profile's answer."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    model: str = body["model"] if isinstance(body, dict) and isinstance(body.get("model"), str) else "?"
    with state.lock:
        state.requests[model] += 1
    if not _authorized(state, authorization):
        return _UNAUTHORIZED
    if (problem := _validate(body)) is not None:
        return _error_reply(400, f"Malformed request: {problem}.", "invalid_request_error")
    profile = state.profiles.get(model)
    from deploysim_testkit import judge_profiles  # LLM-judge stand-ins with configured sensitivity/specificity

    if profile is None and judge_profiles.handles(model):
        return _json_reply(200, judge_profiles.respond(body))
    if profile is None:
        return _error_reply(404, f"The model '{model}' does not exist.", "invalid_request_error")

    messages, tools = body["messages"], body.get("tools") or []
    canon = canonical_request(model, messages, tools)
    if profile.latency_ms:
        await asyncio.sleep(profile.latency_ms / 1000)

    with state.lock:
        state.attempts[canon] += 1
        attempt = state.attempts[canon]
    fault = _fault(profile, canon, attempt)
    if profile.rate_slow and draw(canon, "fault_slow") < profile.rate_slow:
        await asyncio.sleep(profile.slow_ms / 1000)
    if fault == "429":
        return _error_reply(
            429, "Rate limit reached; retry later.", "rate_limit_error", {"Retry-After": f"{profile.retry_after_s:g}"}
        )
    if fault == "500":
        return _error_reply(500, "The server had an error while processing your request.", "server_error")
    if fault == "timeout":
        await asyncio.sleep(profile.hang_s)  # the client should have given up by now
        return _error_reply(504, "Upstream timed out.", "server_error")
    if fault == "malformed":
        return 200, {}, b'{"id": "chatcmpl-broken", "choices": [{"message": <<garbled>>'

    msg = respond(profile, model, messages, tools, canon)
    prompt = sum(_tokens(_text(m.get("content"))) for m in messages)
    out_text = (msg.get("content") or "") + "".join(c["function"]["arguments"] for c in msg.get("tool_calls", []))
    completion = _tokens(out_text)
    resp_id = "chatcmpl-" + _digest(canon, "id")[:24]
    status, headers, body_bytes = _json_reply(
        200,
        {
            "id": resp_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": msg, "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop"}
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        },
    )
    if fault == "truncated":
        return status, headers, body_bytes[: len(body_bytes) // 2]
    with state.lock:
        state.served[resp_id] += 1
    return status, headers, body_bytes


class _App:
    """ASGI app: POST /v1/chat/completions is served directly (the hot path: no routing or
    middleware layers), everything else by Starlette."""

    def __init__(self, state: _State, rest: Starlette) -> None:
        self.deploysim = state
        self.rest = rest

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            return await self.rest(scope, receive, send)
        chunks = []
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
        status, headers, body = await _chat(self.deploysim, b"".join(chunks), auth)
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        head += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})


def create_app(profiles: dict[str, Profile] | None = None, api_key: str | None = None) -> _App:
    """The ASGI app serving the given profiles (default: PROFILES)."""
    state = _State(dict(profiles or PROFILES), api_key)

    async def models(request: Request) -> Response:
        if not _authorized(state, request.headers.get("authorization", "")):
            return _response(_UNAUTHORIZED)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "deploysim"} for n in state.profiles]
        return _response(_json_reply(200, {"object": "list", "data": data}))

    async def chat(request: Request) -> Response:  # reached only for a method other than POST
        return _response(_error_reply(405, "Use POST for chat completions.", "invalid_request_error"))

    async def stats(request: Request) -> Response:
        counts = state.stats()
        out: dict[str, Any] = {"chat_completions": counts, "total": sum(counts.values())}
        with state.lock:
            out["completed"] = sum(state.served.values())
            out["completed_more_than_once"] = sum(1 for n in state.served.values() if n > 1)
            if request.query_params.get("detail"):
                out["served"] = dict(state.served)  # complete answers given, per response id
        return _response(_json_reply(200, out))

    rest = Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat),
            Route("/stats", stats, methods=["GET"]),
        ]
    )
    return _App(state, rest)


# ---------------------------------------------------------------------------- running it


def serve(
    host: str = "127.0.0.1", port: int = 8765, profiles: dict[str, Profile] | None = None, api_key: str | None = None
) -> None:
    """Run the endpoint in the foreground (blocking)."""
    app = create_app(profiles, api_key)
    print(
        f"deploysim reference endpoint: http://{host}:{port}/v1  (models: {', '.join(profiles or PROFILES)})",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=False)


class RunningServer:
    """The endpoint running in a background thread; use as a context manager or call stop()."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, state: _State, port: int) -> None:
        self._server, self._thread, self._state = server, thread, state
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"

    @property
    def stats(self) -> dict[str, int]:
        """Chat-completion requests received so far, per model."""
        return self._state.stats()

    @property
    def total_requests(self) -> int:
        return sum(self.stats.values())

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(
    port: int = 0, profiles: dict[str, Profile] | None = None, api_key: str | None = None
) -> RunningServer:
    """Start the endpoint on 127.0.0.1 in a daemon thread; returns once it accepts connections."""
    app = create_app(profiles, api_key)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False, proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"deploysim-endpoint-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"reference endpoint failed to start on 127.0.0.1:{port} (port in use?)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"reference endpoint did not start on 127.0.0.1:{port} within 10 s")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]  # the real port when port=0
    return RunningServer(server, thread, app.deploysim, bound)
