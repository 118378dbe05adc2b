"""A gold-annotated personal-data dev set generated with Faker in 13 locales.

Each example is a chat message or a tool payload (JSON) built from a template, with the exact
character span and type of every personal value. The split is fixed: an example is held back when
its template or its locale is in the held-back lists below, so the held-back part has template
wordings and locales (their address, ID and phone formats) that tuning on the build part never saw.
A fifth of the texts are written in lower case, as people often type.

    python -m deploysim_testkit.pii_devset [--n 2000] [--part build|held|all]   # prints JSONL

Types are deploysim's: PERSON LOCATION ORGANIZATION ADDRESS POSTCODE EMAIL PHONE CARD IBAN SSN
NATIONAL_ID PASSPORT DRIVER_LICENSE IP URL DATE DATE_OF_BIRTH AGE TITLE NRP.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from typing import Callable

from faker import Faker

LOCALES = (
    "en_US",
    "en_GB",
    "en_IN",
    "de_DE",
    "fr_FR",
    "es_ES",
    "it_IT",
    "pt_BR",
    "nl_NL",
    "pl_PL",
    "fi_FI",
    "sv_SE",
    "da_DK",
)
HELD_LOCALES = ("pt_BR", "pl_PL", "sv_SE", "en_IN")

# Groups of nationalities, religions and political affiliations (NRP) used in the texts.
NRP = (
    "Brazilian", "Nigerian", "Vietnamese", "Polish", "Irish", "Moroccan", "Peruvian", "Korean", "Ukrainian",
    "Ethiopian", "Catholic", "Muslim", "Jewish", "Hindu", "Buddhist", "Sikh", "Mormon", "Lutheran",
    "Republican", "Democrat", "Labour", "Conservative", "Green Party", "Socialist", "Libertarian",
    "Filipino", "Chilean", "Turkish", "Greek", "Egyptian",
)  # fmt: skip
JOBS_EN = ("nurse", "accountant", "software engineer", "teacher", "electrician", "pharmacist", "lawyer")

Value = tuple[str, list[tuple[str, int, int]]]  # text and the spans inside it


def _one(type_: str, text: str) -> Value:
    return text, [(type_, 0, len(text))]


def _join(parts: list[Value | str]) -> Value:
    text, spans = "", []
    for p in parts:
        if isinstance(p, str):
            text += p
            continue
        spans += [(t, s + len(text), e + len(text)) for t, s, e in p[1]]
        text += p[0]
    return text, spans


def _street(f: Faker, loc: str, rng: random.Random) -> Value:
    street = f.street_address().replace("\n", ", ").strip()
    if loc == "en_US" and rng.random() < 0.4:
        return _join([_one("ADDRESS", street), " ", _one("ADDRESS", f.secondary_address())])
    return _one("ADDRESS", street)


def _address_block(f: Faker, loc: str, rng: random.Random, sep: str) -> Value:
    """A postal address as people write it in that country: street line, postcode and city."""
    street, city, pc = _street(f, loc, rng), _one("LOCATION", f.city()), _one("POSTCODE", f.postcode())
    if loc == "en_US":
        return _join([street, sep, city, ", ", _one("LOCATION", f.state_abbr()), " ", pc])
    if loc == "en_GB":
        return _join([street, sep, city, sep, pc])
    if loc == "en_IN":
        return _join([street, sep, city, " ", pc])
    if loc == "pt_BR":
        return _join([street, sep, city, " - ", _one("LOCATION", f.estado_sigla()), ", ", pc])
    return _join([street, sep, pc, " ", city])


def _national_id(f: Faker, loc: str) -> Value:
    if loc == "en_US":
        return _one("SSN", f.ssn())
    make: dict[str, Callable[[], str]] = {
        "en_GB": lambda: f.ssn(),  # NINO
        "en_IN": lambda: f.aadhaar_id(),
        "fr_FR": lambda: f.ssn(),  # NIR
        "es_ES": lambda: f.nif() if f.random.random() < 0.5 else f.nie(),
        "it_IT": lambda: f.ssn(),  # codice fiscale
        "pt_BR": lambda: f.cpf(),
        "nl_NL": lambda: f.ssn(),  # BSN
        "pl_PL": lambda: f.pesel(),
        "fi_FI": lambda: f.ssn(),  # HETU
        "sv_SE": lambda: f.ssn(),  # personnummer
    }
    if loc not in make:
        return _one("PASSPORT", f.passport_number())
    return _one("NATIONAL_ID", make[loc]())


def _date(f: Faker, rng: random.Random, type_: str = "DATE") -> Value:
    d = f.date_of_birth(minimum_age=18, maximum_age=90) if type_ == "DATE_OF_BIRTH" else f.date_between("-30y", "today")
    fmt = rng.choice(["%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d", "%B %d, %Y", "%d %B %Y", "%d.%m.%Y", "%b %d %Y"])
    return _one(type_, d.strftime(fmt).replace(" 0", " "))


def _card(f: Faker, rng: random.Random) -> str:
    n = f.credit_card_number(card_type=rng.choice(["visa16", "mastercard", "amex", "discover"]))
    sep = rng.choice(["", " ", "-"])
    if not sep or len(n) != 16:
        return n
    return sep.join(n[i : i + 4] for i in range(0, 16, 4))


def _iban(f: Faker, rng: random.Random) -> str:
    n = f.iban()
    return " ".join(n[i : i + 4] for i in range(0, len(n), 4)) if rng.random() < 0.5 else n


_HONORIFIC = re.compile(
    r"^((?:Dr|Prof|Mr|Mrs|Ms|Miss|Univ\.Prof|Dipl\.-\w+|Ing|Ind|Dott|Dott\.ssa|Sig|Sig\.ra|Dra?|Sr|Sra)\.?) "
)


def _full_name(f: Faker) -> Value:
    """f.name() with a leading honorific marked as TITLE and trailing degrees dropped ("B.Sc.")."""
    name = re.sub(r" (?:B\.\w+\.|M\.\w+\.|MBA|MSc|PhD|DDS|DVM|MD|Jr\.|Sr\.|I{1,3}|IV|V)$", "", f.name())
    m = _HONORIFIC.match(name)
    if not m:
        return _one("PERSON", name)
    return _join([_one("TITLE", m.group(1)), " ", _one("PERSON", name[m.end() :])])


def _person(f: Faker, loc: str, rng: random.Random) -> Value:
    r = rng.random()
    if r < 0.35 and loc.startswith("en"):
        title = rng.choice(["Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Miss"])
        return _join([_one("TITLE", title), " ", _one("PERSON", f.last_name())])
    if r < 0.3:
        return _one("PERSON", f.first_name())
    return _full_name(f)


def _age(rng: random.Random) -> Value:
    a = str(rng.randint(18, 94))
    form = rng.choice(["{} years old", "aged {}", "{}-year-old", "age {}", "{} y/o"])
    i = form.index("{}")
    text = form.format(a)
    return text, [("AGE", i, i + len(a))]


def values(f: Faker, loc: str, rng: random.Random) -> dict[str, Callable[[], Value]]:
    return {
        "PERSON": lambda: _person(f, loc, rng),
        "PERSON2": lambda: _full_name(f),
        "DR": lambda: _one("TITLE", "Dr."),
        "FIRST": lambda: _one("PERSON", f.first_name()),
        "ORG": lambda: _one("ORGANIZATION", f.company()),
        "CITY": lambda: _one("LOCATION", f.city()),
        "STREET": lambda: _street(f, loc, rng),
        "ADDRESS_LINE": lambda: _address_block(f, loc, rng, ", "),
        "ADDRESS_BLOCK": lambda: _address_block(f, loc, rng, "\n"),
        "POSTCODE": lambda: _one("POSTCODE", f.postcode()),
        "EMAIL": lambda: _one("EMAIL", f.email()),
        "PHONE": lambda: _one("PHONE", f.phone_number()),
        "CARD": lambda: _one("CARD", _card(f, rng)),
        "IBAN": lambda: _one("IBAN", _iban(f, rng)),
        "ID": lambda: _national_id(f, loc),
        "PASSPORT": lambda: _one("PASSPORT", f.passport_number()),
        "LICENSE": lambda: _one("DRIVER_LICENSE", f.bothify(rng.choice(["?#######", "#########", "??######", "?###-####-####"])).upper()),  # noqa: E501
        "IP": lambda: _one("IP", f.ipv4_public() if rng.random() < 0.8 else f.ipv6()),
        "URL": lambda: _one("URL", f.url() if rng.random() < 0.6 else f.domain_name()),
        "DATE": lambda: _date(f, rng),
        "DOB": lambda: _date(f, rng, "DATE_OF_BIRTH"),
        "AGE": lambda: _age(rng),
        "NRP": lambda: _one("NRP", rng.choice(NRP)),
        "JOB": lambda: (rng.choice(JOBS_EN), []),
    }  # fmt: skip


# Chat messages and tool payloads. Non-personal words around them (products, weekdays, versions,
# order numbers, capitalised common nouns) are what over-redaction is measured on.
TEMPLATES = (
    "Hi, I'm {PERSON} and I moved to {CITY} last month. Please update my address to {ADDRESS_LINE}.",
    "Ship the replacement Kindle to:\n{PERSON2}\n{ADDRESS_BLOCK}\nThanks!",
    "My card {CARD} was charged twice for order #48213 on Monday. Can you refund it?",
    "Please wire the deposit to {IBAN} (account holder {PERSON2}).",
    "I'm a {JOB}, {AGE}, and my employer {ORG} wants my tax ID. It's {ID}. Is that safe to share?",
    "{PERSON} was born on {DOB} in {CITY} and now works for {ORG}.",
    "We met on {DATE} at the Python conference; {FIRST} said to email {EMAIL} about the Rust workshop.",
    "Our new neighbour is {NRP} and very friendly. She lives at {STREET} with her kids.",
    "Call me at {PHONE} after 5pm. I'm not at the office on Fridays.",
    "The login from {IP} is not mine. I only use Chrome on my Windows laptop.",
    "My passport number is {PASSPORT} and it expires in June. Do I need a visa for the trip?",
    "My driver's license number is {LICENSE}. The DMV form asks for it twice.",
    "Check out my portfolio at {URL} and tell me what you think of the React layout.",
    "Dear support team, {PERSON} here. My postcode is {POSTCODE} but the checkout says invalid.",
    "As a {NRP} voter I want to know how the new tax plan affects me. I'm {AGE}.",
    "Draft a letter to {PERSON2} at {ORG}, {ADDRESS_LINE}, about the invoice from {DATE}.",
    '{{"customer": {{"name": "{PERSON2}", "email": "{EMAIL}", "phone": "{PHONE}"}}, "order_id": "ORD-5521", "status": "shipped"}}',  # noqa: E501
    '{{"passenger": "{PERSON2}", "date_of_birth": "{DOB}", "passport": "{PASSPORT}", "flight": "LH 402", "seat": "14C"}}',  # noqa: E501
    '{{"account": {{"holder": "{PERSON2}", "iban": "{IBAN}", "address": "{ADDRESS_LINE}"}}, "balance": 1520.75}}',
    '{{"results": [{{"title": "Release notes 2.4", "author": "{PERSON2}", "url": "{URL}"}}], "count": 1}}',
    "Reminder: appointment with {DR} {FIRST} on {DATE}. Bring your ID ({ID}) and the insurance card.",
    "My son ({AGE}) lost his phone. The number was {PHONE}; the carrier is {ORG}.",
    "Can you translate this for my {NRP} grandmother? She lives in {CITY}, {POSTCODE}.",
    "Forward the contract to {EMAIL} and cc {PERSON}. The deadline is Thursday.",
    "I need a cover letter. Name: {PERSON2}. Address: {ADDRESS_LINE}. Phone: {PHONE}. Email: {EMAIL}.",
    "Hello, this is {PERSON} from {ORG}. Our server at {IP} keeps timing out on Kubernetes 1.29.",
    "Update my billing address to {STREET}, {CITY} {POSTCODE}. The old one was on Excel.",
    "Please confirm: {PERSON2}, {AGE}, {NRP}, living at {ADDRESS_LINE}.",
    '{{"tool": "lookup_user", "result": {{"full_name": "{PERSON2}", "national_id": "{ID}", "dob": "{DOB}", "city": "{CITY}"}}}}',  # noqa: E501
    "The package for {PERSON2} should go to\n{ADDRESS_BLOCK}\nand not to the Amazon locker.",
)


def _split(template_index: int, locale: str) -> str:
    h = hashlib.sha256(f"pii-devset:{template_index}".encode()).digest()[0]
    return "held" if locale in HELD_LOCALES or h % 10 < 4 else "build"


def _fill(template: str, vals: dict[str, Callable[[], Value]]) -> Value:
    parts: list[Value | str] = []
    rest = template.replace("{{", "\x00").replace("}}", "\x01")
    while "{" in rest:
        before, _, after = rest.partition("{")
        key, _, rest = after.partition("}")
        parts += [before.replace("\x00", "{").replace("\x01", "}"), vals[key]()]
    parts.append(rest.replace("\x00", "{").replace("\x01", "}"))
    return _join(parts)


def generate(n: int = 2000, seed: int = 7, part: str = "all") -> list[dict]:
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for i, loc in enumerate(LOCALES):
        fakers[loc].seed_instance(seed * 100 + i)
    rows: list[dict] = []
    k = 0
    while len(rows) < n:
        loc = LOCALES[k % len(LOCALES)]
        ti = rng.randrange(len(TEMPLATES))
        k += 1
        text, spans = _fill(TEMPLATES[ti], values(fakers[loc], loc, rng))
        if rng.random() < 0.2 and len(text.lower()) == len(text):
            text = text.lower()  # people often type without capitals
        p = _split(ti, loc)
        if part in ("all", p):
            rows.append({"id": f"{loc}-{k}", "locale": loc, "template": ti, "part": p, "text": text, "spans": spans})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--part", choices=["build", "held", "all"], default="all")
    args = ap.parse_args()
    for row in generate(args.n, part=args.part):
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
