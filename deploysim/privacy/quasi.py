"""Street addresses of many countries, and quasi-identifiers: values that single no one out alone
but together re-identify people.

``street_spans`` (ADDRESS, a direct identifier: the residual-PII checks look for it) finds
house-number-first streets with the USPS street suffixes (Publication 28), streets named first
with the number after ("Rua do Arenque 1634", "Hauptstraße 5", "Nils Westermarckin kuja 63",
"Viale Parisi, 171"), French-style "8, avenue Manon Gillet" and unit lines ("Apt. 595", "Suite
501", "Flat 7", "Piso 6").

``quasi_spans`` finds the rest (redacted, but not blocking in the residual-PII checks, since model
answers are full of dates and places): POSTCODE (UK/CA/NL/PL/PT/BR shapes anywhere; numeric codes
after a postcode word, next to a street or at the start of an address line, with the city after
them as LOCATION), DATE (absolute dates), AGE, TITLE (honorifics before a name), NRP (nationality,
religious and political groups), URL (web addresses and domains other than a few public sites)
and ORGANIZATION (names ending in a legal form: GmbH, Ltd, S.A., ...).
"""

from __future__ import annotations

import re
from typing import Iterable

from deploysim.privacy.detectors import _DATE_RE, Span

_DIGIT_RE = re.compile(r"\d")
_CAP = r"[A-ZÀ-ÖØ-Þ][\w'’.-]*"  # a capitalised word
_NAMEW = r"[A-ZÀ-ÖØ-Þ][\w'’-]*"  # a capitalised word without dots
_USPS = (
    "Alley|Annex|Arcade|Avenue|Bayou|Beach|Bend|Bluffs?|Bottom|Boulevard|Branch|Bridge|Brooks?|Burgs?|Bypass|Camp|Canyon|"
    "Cape|Causeway|Centers?|Centre|Circles?|Cliffs?|Club|Commons?|Corners?|Course|Courts?|Coves?|Creek|Crescent|Crest|"
    "Crossing|Crossroad|Curve|Dale|Dam|Divide|Drives?|Estates?|Expressway|Extensions?|Falls?|Ferry|Fields?|Flats?|"
    "Fords?|Forest|Forges?|Forks?|Fort|Freeway|Gardens?|Gateway|Glens?|Greens?|Groves?|Harbors?|Harbours?|Haven|"
    "Heights|Highway|Hills?|Hollow|Inlet|Islands?|Isle|Junctions?|Keys?|Knolls?|Lakes?|Landing|Lane|Lights?|Loaf|"
    "Locks?|Lodge|Loop|Mall|Manors?|Meadows?|Mews|Mills?|Mission|Motorway|Mount|Mountains?|Neck|Orchard|Oval|Overpass|"
    "Parks?|Parkways?|Pass|Passage|Path|Pike|Pines?|Place|Plains?|Plaza|Points?|Ports?|Prairie|Radial|Ramp|Ranch|"
    "Rapids?|Rest|Ridges?|River|Roads?|Route|Row|Rue|Run|Shoals?|Shores?|Skyway|Springs?|Spurs?|Squares?|Station|"
    "Stravenue|Streams?|Streets?|Summit|Terrace|Throughway|Trace|Track|Trafficway|Trail|Tunnel|Turnpike|Underpass|"
    "Unions?|Valleys?|Viaduct|Views?|Villages?|Ville|Vista|Walks?|Wall|Ways?|Wells?|Rise|Parade|Wharf|Close|Grange|"
    "Chase|Drove|Gate|Hey|Lea|Nook|Quay|Yard|Ave|St|Rd|Blvd|Ln|Dr|Ct|Pl|Hwy|Pkwy|Sq|Ter|Trl|Cir"
)
_UNIT = (
    r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Piso|Puerta|Appartamento|Interno|Scala|Wohnung|Whg|Etage|Bâtiment|"
    r"Escalera|Esc|Apto|Bloco|Casa|Lok|Lokal|Andar|Sala|Oficina|Piano|Studio|Stiege|Tür|Top)\.?"
)
_UNIT_RE = re.compile(rf"(?<![\w-]){_UNIT} ?(?:#|[Nn][ºo°]\.? ?)?\d{{1,5}}[A-Za-z]?(?![\w-])", re.IGNORECASE)
_NUM = r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?"
_NUM_FIRST_RE = re.compile(rf"(?<![\w.,-]){_NUM},? (?:{_CAP} ){{1,4}}(?:{_USPS})\b\.?")
_TYPE_FIRST = (
    r"Rua|Avenida|Av\.|Calle|C/|Paseo|Plaza|Camino|Carrer|Cuesta|Ronda|Glorieta|Pasaje|Vía|Via|Cañada|Callejón|Rambla|"
    r"Travesía|Urbanización|Viale|Piazza|Corso|Largo|Vicolo|Strada|Borgo|Contrada|Rue|Avenue|Boulevard|Chemin|Allée|"
    r"Impasse|Place|Quai|Cours|Route|Plac|plac|Ulica|ulica|ul\.|Aleja|aleja|al\.|Osiedle|osiedle|Praça|Travessa|Rodovia|"
    r"Estrada|Alameda|Recanto|Ladeira|Vila|Conjunto|Quadra|Setor|Lago|Loteamento|Núcleo|Residencial|Trecho|Via|Passeig|"
    r"Avinguda|Carretera|Sector|Incrocio|Rotonda|Stretto|Vial|Pasadizo|Passatge|Piazzale|Lungomare|Avda\.|Ctra\.|C\.|Pje\.|Urb\."
)
_COMPOUND = (
    r"[\w'’-]*(?i:straße|stræde|steeg|pad|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|chaussee|steig|pfad|straat|laan|plein|gracht|"
    r"singel|kade|dijk|hof|markt|vej|gade|gatan|vägen|torget|gränd|stig|allé|veien|gata|tie|katu|kuja|polku|väylä|kaari|"
    r"rinne|katu|bulevardi|puistikko|tori|dreef|baan)"
)
_NAMED_FIRST_RE = re.compile(
    rf"(?<![\w-])(?:(?:{_TYPE_FIRST})(?: (?:{_CAP}|d[aeo]s?|de|del|della|di|do|da|la|le|les|du|des|van|der|den|von|dos|das|y|e|i)){{1,5}}"  # noqa: E501
    rf"|{_CAP}{_COMPOUND}|(?:{_CAP} ){{1,3}}(?:kuja|tie|katu|polku|vej|gade|gatan|vägen|straße|weg|allee|straat|laan|Straße|Weg|Allee|Allé|Vej|Gade|Plads))"  # noqa: E501
    rf",? {_NUM}(?![\w-])"
)
_FR_RE = re.compile(
    rf"(?<![\w.,-]){_NUM},? (?:rue|avenue|boulevard|bd|chemin|allée|impasse|place|quai|cours|route|square|voie|passage)"
    rf"(?: (?:{_CAP}|de|du|des|la|le|les|d'[\w-]+|l'[\w-]+)){{1,5}}"
)


_STOP_WORD = (
    r"(?!(?:the|a|an|on|in|at|to|of|for|and|or|my|your|our|their|by|with|from|is|are|was|it|this|that|these|those|"
    r"every|each|per|more|less|than|about|some|any|all|other|times?|minutes?|hours?|days?|weeks?|months?|years?|"
    r"miles?|km|items?|people|dogs?|cats?|kids?|boxes)\b)"
)
_CAPLESS = rf"{_STOP_WORD}[^\W\d_][\w'’.-]*"
_CASELESS_RES = (
    re.compile(_NUM_FIRST_RE.pattern.replace(_CAP, _CAPLESS), re.IGNORECASE),
    re.compile(_NAMED_FIRST_RE.pattern.replace(_CAP, _CAPLESS), re.IGNORECASE),
)


def _needed_by_rules(text: str, start: int, end: int) -> bool:
    from deploysim.privacy.ner import needed_by_rules

    return needed_by_rules(text, start, end, "NRP")


def _caseless(text: str) -> bool:
    from deploysim.privacy.ner import caseless

    return caseless(text)


# a building number before a street that has its own ("19 1755 Nelson Mandela Drive", "87 Jakobi 69")
_LEAD_NUM_RE = re.compile(r"(?<![\w.,:/-])\d{1,5} +$")
_MONTHS = (
    "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|august|september|"
    "october|november|december"
)
_NUM_NAME_NUM_RE = re.compile(
    rf"(?<![\w.,:/-])\d{{1,5}} (?!(?i:{_MONTHS})\b)((?:{_CAPLESS} ){{1,3}})\d{{1,5}}[A-Za-z]?(?![\w/-])"
    rf"(?=,|\.?(?: {{2,}}|\s*\n)|\.? (?i:{_UNIT}))"
)


_STREET_CUE_RE = re.compile(
    r"\b(?:address(?:es)?|lives?|lived|living|at|to|moved|located|deliver|send|ship|visit)\b[:\s]*$", re.IGNORECASE
)


def extended(text: str, start: int, v: str) -> Span:
    """An ADDRESS span of v at start, with a building number just before it."""
    lead = _LEAD_NUM_RE.search(text, max(0, start - 7), start)
    a = lead.start() if lead else start
    return Span("ADDRESS", a, start + len(v), text[a : start + len(v)])


def street_spans(text: str, lower: bool | None = None) -> Iterable[Span]:
    """Streets and unit lines (``lower``: the text is written without capitals; found when None)."""
    if not _DIGIT_RE.search(text):
        return
    regexes: tuple[re.Pattern[str], ...] = (_NUM_FIRST_RE, _NAMED_FIRST_RE, _FR_RE)
    lower = _caseless(text) if lower is None else lower
    if lower:
        regexes += _CASELESS_RES
    found = [extended(text, m.start(), m.group(0).rstrip(".,")) for rx in regexes for m in rx.finditer(text)]
    yield from found
    for m in _NUM_NAME_NUM_RE.finditer(text):
        if any(f.start < m.end() and m.start() < f.end for f in found):
            continue  # a street the patterns above know (its unit is a span of its own)
        if not (lower or re.search(r"[A-ZÀ-ÖØ-Þ]|[^\x00-\x7f]", m.group(1))):
            continue  # a name, not "chapter 3 verse 16"
        if text.startswith(",", m.end()) and not _STREET_CUE_RE.search(text, max(0, m.start() - 30), m.start()):
            continue  # "2 Cups Flour 3, ...": before a comma only where an address is expected
        yield Span("ADDRESS", m.start(), m.end(), m.group(0))
    for m in _UNIT_RE.finditer(text):
        yield Span("ADDRESS", m.start(), m.end(), m.group(0))


# ---------------------------------------------------------------------------- postcodes

_UK_CA = (
    r"[A-Z]{1,2}\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2}"  # UK
    r"|[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d"  # Canada
)
_POSTCODE_ANYWHERE = re.compile(
    rf"(?<![\w-])(?:{_UK_CA}"
    r"|\d{4}[A-Z]{2}"  # Netherlands, written without the space
    r"|\d{5}-\d{3}|\d{5}-\d{4})(?![\w-])"  # Brazil CEP, US ZIP+4
)
_POSTCODE_ANYWHERE_LOWER = re.compile(_POSTCODE_ANYWHERE.pattern, re.IGNORECASE)
_POSTCODE_NUM = r"(?:\d{5}-\d{3}|\d{2}-\d{3}|\d{4}-\d{3}|\d{3} \d{2}|\d{4} ?[A-Z]{2}|\d{4,6})"
_POSTCODE_WORD_RE = re.compile(
    r"(?:\b(?:zip|zip ?code|post ?code|postal ?code|plz|cep|code postal|pin ?code|cap|kod pocztowy|postnummer|"
    r"postinumero)\b|\"(?:zip|zipcode|zip_code|postcode|postal_code)\")\W{0,6}(?:is\W{1,3})?("
    + _POSTCODE_NUM
    + r")(?![\w-])",
    re.IGNORECASE,
)
_CITY = rf"{_NAMEW}(?:[ -](?:{_NAMEW}|sur|de|del|am|an|der|la|le|nad|do|di|en|im))*?(?: \([A-Z]{{2}}\))?"
# "10115 Berlin", "13-500 Bydgoszcz", "114 55 Stockholm", after a line break, a comma or a street
_END = r"(?=$|[\n,;.)\"\\]| -| and\b)"
_AFTER = r"(?:^|(?<=[\n,;\"]) ?|(?<=\bin )|(?<=\bat )|(?<=\bto ))"
_PC_CITY_RE = re.compile(rf"{_AFTER}({_POSTCODE_NUM}) ({_CITY}){_END}", re.MULTILINE)
# "Adamsbury, OR 13900", "Bhopal 690743", "Tarragona, 30188", "Alves do Sul - AC, 69074-391"
_CITY_PC_RE = re.compile(
    rf"{_AFTER}({_CITY})(?:,? ([A-Z]{{2}})|,? - ([A-Z]{{2}}))?(?:,? |\n)({_POSTCODE_NUM}|\d{{5}}-\d{{3,4}}|{_UK_CA}){_END}",  # noqa: E501
    re.MULTILINE,
)


_CITY_LOWER = rf"{_CAPLESS}(?:[ -]{_CAPLESS}){{0,3}}?"
_PC_CITY_LOWER_RE = re.compile(
    _PC_CITY_RE.pattern.replace(_CITY, _CITY_LOWER).replace("[A-Z]{2}", "[a-z]{2}"), re.MULTILINE
)
_CITY_PC_LOWER_RE = re.compile(
    _CITY_PC_RE.pattern.replace(_CITY, _CITY_LOWER).replace("[A-Z]{2}", "[a-z]{2}"), re.MULTILINE | re.IGNORECASE
)


def _postal_spans(text: str, lower: bool | None = None) -> Iterable[Span]:
    if not _DIGIT_RE.search(text):
        return
    lower = _caseless(text) if lower is None else lower
    for m in (_POSTCODE_ANYWHERE_LOWER if lower else _POSTCODE_ANYWHERE).finditer(text):
        yield Span("POSTCODE", m.start(), m.end(), m.group(0))
    for m in _POSTCODE_WORD_RE.finditer(text):
        yield Span("POSTCODE", m.start(1), m.end(1), m.group(1))
    for m in (_PC_CITY_LOWER_RE if lower else _PC_CITY_RE).finditer(text):
        yield Span("POSTCODE", m.start(1), m.end(1), m.group(1))
        yield Span("LOCATION", m.start(2), m.end(2), m.group(2), rule=True)
    for m in (_CITY_PC_LOWER_RE if lower else _CITY_PC_RE).finditer(text):
        if m.group(1).split()[0].title() in _NOT_CITY:
            continue
        yield Span("LOCATION", m.start(1), m.end(1), m.group(1), rule=True)
        for k in (2, 3):  # a state or region code
            if m.group(k):
                yield Span("LOCATION", m.start(k), m.end(k), m.group(k), rule=True)
        yield Span("POSTCODE", m.start(4), m.end(4), m.group(4))


_NOT_CITY = {
    "The", "A", "An", "My", "Our", "Your", "This", "That", "Order", "Room", "Version", "Page", "Chapter", "Year",
    "Flight", "Invoice", "Ticket", "Case", "Item", "Step", "Total", "Phone", "Call", "Hi", "Hello", "Thanks",
}  # fmt: skip

# ---------------------------------------------------------------------------- dates, ages, titles

_ISO_TIME_RE = re.compile(r"(?<![\d-])(?:19|20)\d{2}-[01]\d-[0-3]\d[ T][0-2]\d:[0-5]\d(?::[0-5]\d)?(?!\d)")
_AGE_RES = (
    re.compile(r"(?<![\w.])(\d{1,3}) ?(?:-| )?(?:years?|yrs?|yo)(?: |-)?old\b", re.IGNORECASE),
    re.compile(r"(?<![\w.])(\d{1,3})-year-old\b", re.IGNORECASE),
    re.compile(r"(?<![\w.])(\d{1,3}) ?y/?o\b", re.IGNORECASE),
    re.compile(r"\b(?:aged?|age:)\s?(\d{1,3})\b(?![.,]\d)", re.IGNORECASE),
    re.compile(r"\b(?:I'?m|I am|turned|turning|she'?s|he'?s|is)\s(\d{1,2})(?=\s*(?:[,;)!?](?!\d)|\.(?!\d)|and\b|$))"),
)
_TITLE_RE = re.compile(
    r"(?<![\w.])(?:Dipl\.-Ing|Univ\.Prof|Dott\.ssa|Sig\.ra|Sig\.na|Mr|Mrs|Ms|Mx|Dr|Dra|Prof|Rev|Sr|Sra|Srta|Mme|Mlle|Fr|Hon|"
    r"Dott|Sig|Ing|Mag|Mgr|Hr|Fru)\.?(?= [A-Z][a-z])"
    r"|(?<![\w.])(?:mr|mrs|ms|mx|dr|prof)\.(?= [A-Z][a-z])"
    r"|(?<![\w.])(?:Miss|Sir|Dame|Lady|Lord|Herr|Frau|Madam|Madame|Monsieur|Signor|Signora|Señor|Señora|Pani|Pan)(?= [A-Z][a-z])"  # noqa: E501
)

# ---------------------------------------------------------------------------- groups of people

_NRP_WORDS = (
    # nationalities (demonyms)
    "Afghan Albanian Algerian American Andorran Angolan Argentine Argentinian Armenian Australian Austrian Azerbaijani "
    "Bahamian Bahraini Bangladeshi Barbadian Belarusian Belgian Belizean Beninese Bhutanese Bolivian Bosnian Botswanan "
    "Brazilian British Bruneian Bulgarian Burkinabe Burmese Burundian Cambodian Cameroonian Canadian Chadian Chilean "
    "Chinese Colombian Congolese Croatian Cuban Cypriot Czech Danish Djiboutian Dominican Dutch Ecuadorian Egyptian "
    "Emirati English Eritrean Estonian Ethiopian Fijian Filipino Finnish French Gabonese Gambian Georgian German "
    "Ghanaian Greek Guatemalan Guinean Haitian Honduran Hungarian Icelandic Indian Indonesian Iranian Iraqi Irish "
    "Israeli Italian Ivorian Jamaican Japanese Jordanian Kazakh Kenyan Korean Kosovar Kuwaiti Kyrgyz Laotian Latvian "
    "Lebanese Liberian Libyan Lithuanian Luxembourgish Macedonian Malagasy Malawian Malaysian Maldivian Malian Maltese "
    "Mauritanian Mauritian Mexican Moldovan Mongolian Montenegrin Moroccan Mozambican Namibian Nepalese Nepali "
    "Nicaraguan Nigerian Nigerien Norwegian Omani Pakistani Palestinian Panamanian Paraguayan Peruvian Polish "
    "Portuguese Qatari Romanian Russian Rwandan Salvadoran Samoan Saudi Scottish Senegalese Serbian Singaporean "
    "Slovak Slovenian Somali South African Spanish Sri Lankan Sudanese Surinamese Swedish Swiss Syrian Taiwanese "
    "Tajik Tanzanian Thai Togolese Tongan Trinidadian Tunisian Turkish Turkmen Ugandan Ukrainian Uruguayan Uzbek "
    "Venezuelan Vietnamese Welsh Yemeni Zambian Zimbabwean Kurdish Roma Romani Tamil Punjabi Bengali Hispanic Latino "
    "Latina Latinx Asian African Arab European Caribbean Aboriginal Indigenous Maori Inuit "
    # religions
    "Christian Catholic Protestant Orthodox Evangelical Baptist Methodist Lutheran Anglican Presbyterian Pentecostal "
    "Mormon Adventist Quaker Amish Mennonite Muslim Sunni Shia Shiite Sufi Jewish Jew Hindu Buddhist Sikh Jain Bahai "
    "Baháʼí Taoist Shinto Zoroastrian Pagan Wiccan Atheist Agnostic "
    # political
    "Republican Democrat Democratic Conservative Labour Liberal Libertarian Socialist Communist Marxist Green Tory "
    "Whig Centrist Progressive Nationalist Anarchist Fascist Populist"
).split()
_NRP_PLURAL = {w + "s" for w in _NRP_WORDS if not w.endswith(("sh", "ch", "ese", "ss", "i"))}
_NRP_SET = set(_NRP_WORDS) | _NRP_PLURAL
_NRP_PAIRS = {("Green", "Party"), ("Labour", "Party"), ("South", "African"), ("Sri", "Lankan")}
_NRP_LOWER_SET = {w.lower() for w in _NRP_SET}
_WORD_RE = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_CAP_WORD_RE = re.compile(r"(?<![\w-])[A-Z][a-z]+(?:-[A-Z][a-z]+)?(?![\w-])")


def _nrp_matches(text: str, lower: bool) -> Iterable[tuple[int, int, str]]:
    """(start, end, word) of group words, two-word names first ("Green Party", "Sri Lankan")."""
    words = [(m.start(), m.end(), m.group(0)) for m in (_WORD_RE if lower else _CAP_WORD_RE).finditer(text)]
    i = 0
    while i < len(words):
        s, e, w = words[i]
        if i + 1 < len(words) and words[i + 1][0] == e + 1:
            pair = (w.title(), words[i + 1][2].title()) if lower else (w, words[i + 1][2])
            if pair in _NRP_PAIRS:
                yield s, words[i + 1][1], text[s : words[i + 1][1]]
                i += 2
                continue
        if (w.lower() in _NRP_LOWER_SET) if lower else (w in _NRP_SET):
            yield s, e, w
        i += 1


# a language, not a group of people ("in French", "translate to Spanish")
_LANGUAGE_BEFORE_RE = re.compile(
    r"(?:\b(?:in|into|to|from|speak|speaks|speaking|learn|learning|study|the)\s+)$", re.IGNORECASE
)
_LANGUAGE_AFTER_RE = re.compile(
    r"\s+(?:language|translation|text|word|words|version|dish|food|cuisine|keyboard)\b", re.IGNORECASE
)
_PARTY_WORDS = {
    "Green",
    "Liberal",
    "Progressive",
    "Democratic",
    "Conservative",
    "Orthodox",
    "Evangelical",
    "Labour",
    "Polish",
}
_SENTENCE_START_RE = re.compile(r"(?:^|[.!?:\n]\s*|\"\s*)$")

# ---------------------------------------------------------------------------- web addresses, organisations

_TLDS = (
    "com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|pl|se|dk|fi|no|pt|br|in|au|ca|us|info|biz|me|tv|ch|at|be|ru|jp|cn|"
    "xyz|dev|app|site|online|blog|eu|mx|ar|cz|sk|hu|ro|gr|ie|nz|za|tech|store|shop|ai"
)
_URL_RE = re.compile(
    rf"(?<![\w@.-])(?:https?://[^\s<>\"'()]+|(?:www\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+(?:{_TLDS})\b(?:/[^\s<>\"'()]*)?)",
)
_PUBLIC_SITES = re.compile(
    r"(?:^|\.)(?:google|youtube|wikipedia|github|gitlab|stackoverflow|python|pypi|microsoft|apple|amazon|facebook|twitter|"
    r"x|linkedin|reddit|openai|anthropic|mozilla|w3|npmjs|docker|kubernetes|readthedocs|example|arxiv|nih|who|gov|"
    r"bbc|nytimes|medium|instagram|tiktok|netflix|spotify|zoom|slack|dropbox|notion|cloudflare|aws|azure|"
    r"huggingface|kaggle|yahoo|bing|duckduckgo)\.(?:com|org|net|io|co|gov|int|ai|co\.uk|de|fr|edu)$"
)
_FILE_EXT = re.compile(
    r"\.(?:py|js|ts|json|yaml|yml|txt|md|csv|html|css|java|cpp|rs|go|sh|exe|zip|pdf|png|jpg|log)$", re.IGNORECASE
)
_LEGAL = (
    r"GmbH(?: & Co\. KG)?|AG|KG|OHG|e\.V\.|UG|Ltd\.?|Limited|LLC|LLP|Inc\.?|Corp\.?|PLC|plc|"
    r"S\.A\.(?:T\.|S\.)?|S\.L\.|S\.p\.A\.|s\.r\.l\.|S\.r\.l\.|S\.n\.c\.|S\.a\.s\.|SARL|SAS|SA|Sp\. z o\.o\.|Sp\.k\.|Sp\.j\.|S\.C\.|"  # noqa: E501
    r"ApS|A/S|I/S|AB|HB|Oy|Oyj|Ky|B\.V\.|N\.V\.|V\.O\.F\.|Ltda\.?|S/A|ME|EIRELI|e Filhos|et Fils|and Sons|& Sons|& Søn|"
    r"e figli|und Söhne|& Co\.?|Group|Holdings|Partners|Associates|Tmi|e\.G\.|eG|S\.Com\.|S\.Coop\.|S\.L\.L\.|Stiftung"
)
_FIRM_AND = r"(?:and|&|e|et|und|y|og|och|en|i)"
_ORG_RE = re.compile(
    rf"(?<![\w-])(?:{_CAP}[ ,&-]+){{0,4}}{_CAP},? (?:{_LEGAL})(?![\w])"
    rf"|(?<![\w-]){_CAP}, {_CAP} {_FIRM_AND} {_CAP}(?= (?:is|was|are|wants|asked|said|has|sent|charged)\b|[.,;]|$)"
)
_ORG_HINT_RE = re.compile(rf" (?:{_LEGAL})(?![\w])|, \w+ {_FIRM_AND} ")
_AFTER_HINT_RE = re.compile(r"\b(?:mov|reloc|liv|based|born|grew|locat|resid|work|employ|this is)", re.IGNORECASE)


_TITLE_LOWER_RE = re.compile(
    r"(?<![\w.])(?:(?:dipl\.-ing|univ\.prof|dott\.ssa|sig\.ra|mr|mrs|ms|mx|dr|dra|prof|dott|sig|ing|sra|srta|mme|mlle)\."
    r"|(?:miss|sir|madam|herr|frau))(?= [^\W\d_])"
)
_NAME_AFTER = (
    r"(?:my name is|my name's|name:|name is|this is|signed|regards,|sincerely,|cc|dear|account holder|call me"
    r"|mr\.|mrs\.|ms\.|dr\.|prof\.|miss|herr|frau)"
)
_LOWER_NAME_RE = re.compile(rf"(?<![\w.]){_NAME_AFTER}\s+((?:{_CAPLESS})(?:[ -](?:{_CAPLESS})){{0,2}})")
_NAME_STOP = {
    "a",
    "an",
    "the",
    "not",
    "just",
    "also",
    "from",
    "here",
    "and",
    "or",
    "but",
    "so",
    "is",
    "to",
    "about",
    "for",
}


_CAP_NAME_RE = re.compile(
    rf"(?<![\w.])(?i:my name is|my name's|name:|name is|cc|dear|account holder|signed|regards,|sincerely,|call me)\s+"
    rf"({_NAMEW}(?: (?:{_NAMEW}|de|del|van|von|der|da|di|du|le|la)(?![\w'’-])){{0,3}})"
)
_NOT_NAME = {
    "Sir", "Sirs", "Madam", "Customer", "Customers", "Team", "Support", "All", "Colleague", "Colleagues", "Friend",
    "Friends", "Hiring", "User", "Users", "Everyone", "Reader", "Valued", "Mr", "Mrs", "Ms", "Dr", "Prof",
}  # fmt: skip


_AFTER_TITLE_RE = re.compile(rf" ({_NAMEW}(?: {_NAMEW}){{0,2}})")


def _name_spans(text: str, titles: list[tuple[int, int]]) -> Iterable[Span]:
    """Capitalised names after a title ("Herr Piotr Heydrich") or a word that introduces one
    ("Name: Alexei Schuchhardt", "cc Mohamed")."""
    for _, end in titles:
        m = _AFTER_TITLE_RE.match(text, end)
        if m:
            v = m.group(1).rstrip(".,")
            yield Span("PERSON", m.start(1), m.start(1) + len(v), v, rule=True)
    for m in _CAP_NAME_RE.finditer(text):
        v = m.group(1).rstrip(".,")
        if v.split()[0] not in _NOT_CITY and v.split()[0] not in _NOT_NAME:
            yield Span("PERSON", m.start(1), m.start(1) + len(v), v, rule=True)


def _lower_name_spans(text: str) -> Iterable[Span]:
    """Names after "my name is", "name:", "this is ... from", "dear", "cc" or a title, in text
    written without capitals (where the NER model cannot see them)."""
    from deploysim.privacy.ner import _starters

    stop = _starters()
    for m in _LOWER_NAME_RE.finditer(text):
        words = m.group(1).split(" ")
        keep = []
        for w in words:
            if w.lower().strip(".,'") in stop or w.lower() in _NAME_STOP:
                break
            keep.append(w)
            if w.endswith((".", ",")):
                break
        if not keep:
            continue
        if m.group(0).startswith("this is") and not re.match(
            r"\s+(?:from|here|speaking|calling)\b", text[m.start(1) + len(" ".join(keep)) :]
        ):
            continue  # "this is great"
        value = " ".join(keep).rstrip(".,")
        yield Span("PERSON", m.start(1), m.start(1) + len(value), value, rule=True)


_NAME_WORDS = rf"{_CAP}(?: (?:{_CAP}|de|del|di|da|van|von|der|la|le|sur|am|an)(?![\w'’-]))*"
# "moved to Tornio", "lives in Pöytyä", "born ... in Bremervörde"
_PLACE_AFTER_RE = re.compile(
    rf"\b(?:moved|moving|relocated|relocating|move) to ({_NAME_WORDS})"
    rf"|\b(?:live|lives|living|based|born(?: on [^,]{{4,20}}?)?|grew up|located|reside|resides|residing) in ({_NAME_WORDS})"  # noqa: E501
)
# "works for Nieminen", "employed at Acme", "this is Tommi from Salmi."
_ORG_AFTER_RE = re.compile(
    rf"\b(?:works?|working|worked) (?:for|at) ({_NAME_WORDS})|\bemployed (?:by|at) ({_NAME_WORDS})"
    rf"|\bthis is {_CAP}(?: {_CAP}){{0,2}} from ({_NAME_WORDS})(?=[.,;!]|$)"
)


_PLACE_AFTER_LOWER_RE = re.compile(
    _PLACE_AFTER_RE.pattern.replace(_NAME_WORDS, rf"{_CAPLESS}(?: {_CAPLESS}){{0,2}}?(?= and\b| last\b|[.,;!?]|$)")
)
_ORG_AFTER_LOWER_RE = re.compile(
    _ORG_AFTER_RE.pattern.replace(_NAME_WORDS, rf"{_CAPLESS}(?: {_CAPLESS}){{0,3}}?(?=[.,;!?]|$)").replace(
        _CAP, _CAPLESS
    )
)


_ADDRESS_LABEL_RE = re.compile(
    r"(?<!email )(?<!e-mail )(?<!\bip )(?<!mac )(?<!web )(?<!wallet )(?<!memory )(?<!server )\b(?:(?:billing|shipping|mailing|postal|delivery|home|street|new|current|permanent|residential|my|our|office)\s+)?"  # noqa: E501
    r"address(?:es)?(?:\s+is|\s+to|\s*:)[ \t]*(\n?)",
    re.IGNORECASE,
)
_LABEL_END_RE = re.compile(r"\.\s+(?=[A-Z])|\.\s*$|\n|\s+\w+:|[\"}]")
_PLACEHOLDER_ONLY_RE = re.compile(r"\s*(?:<[A-Z_]+_(?:\d+|#[0-9a-f]{10})>\s*)+")


def _labelled_address_spans(text: str, pieces: list[Span], lower: bool) -> Iterable[Span]:
    """What follows "address:" (or "billing address:" and a block of lines) is an address: every
    part of it that no other detector typed becomes ADDRESS, line by line and comma by comma."""
    for m in _ADDRESS_LABEL_RE.finditer(text):
        start = m.end()
        if m.group(1):  # a block: the lines up to a blank line, at most six
            block = re.match(r"(?:[^\n]{1,80}(?:\n|$)){1,6}", text[start:])
            end = start + (len(block.group(0).split("\n\n")[0]) if block else 0)
        else:
            e = _LABEL_END_RE.search(text, start, min(len(text), start + 160))
            end = e.start() if e else min(len(text), start + 160)
            if e and e.group(0) == "\n":  # more lines of the same address below
                more = re.match(r"(?:[^\n]{1,60}(?:\n|$)){1,5}", text[end + 1 :])
                lines = more.group(0).split("\n\n")[0] if more else ""
                if _DIGIT_RE.search(lines):
                    end = end + 1 + len(lines.rstrip("\n"))
        value = text[start:end]
        if not _DIGIT_RE.search(value) and (lower or not re.search(r"[A-Z]", value)):
            continue  # "my address is the same as before"
        pos = start
        for part in re.split(r"(\n|, )", text[start:end]):
            a, b = pos, pos + len(part)
            pos = b
            stripped = part.strip()
            if not stripped or part in ("\n", ", ") or _PLACEHOLDER_ONLY_RE.fullmatch(part):
                continue
            if not any(p.start < b and a < p.end for p in pieces):
                lead = len(part) - len(part.lstrip())
                yield Span("ADDRESS", a + lead, a + lead + len(stripped.rstrip(".,")), stripped.rstrip(".,"))


def quasi_spans(text: str) -> Iterable[Span]:
    """Postcodes and the cities beside them, dates, ages, titles, groups of people, web addresses and
    organisations with a legal form (overlapping candidates; resolve_spans picks among them)."""
    lower = _caseless(text)
    postal = list(_postal_spans(text, lower))
    yield from postal
    if "ddress" in text or "DDRESS" in text:
        yield from _labelled_address_spans(text, postal + list(street_spans(text, lower)), lower)
    if _DIGIT_RE.search(text):
        for m in _DATE_RE.finditer(text):
            if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "-_/.:"):
                continue  # a version or a model name ("gpt-4o-2024-05-13"), not a date of an event
            yield Span("DATE", m.start(), m.end(), m.group(0))
        for m in _ISO_TIME_RE.finditer(text):
            yield Span("DATE", m.start(), m.end(), m.group(0))
        for rx in _AGE_RES:
            for m in rx.finditer(text):
                if 0 < int(m.group(1)) < 125:
                    yield Span("AGE", m.start(1), m.end(1), m.group(1))
    titles = []
    for m in (_TITLE_LOWER_RE if lower else _TITLE_RE).finditer(text):
        titles.append((m.start(), m.end()))
        yield Span("TITLE", m.start(), m.end(), m.group(0))
    if lower:
        yield from _lower_name_spans(text)
    else:
        yield from _name_spans(text, titles)
    for start, end, w in _nrp_matches(text, lower):
        if _LANGUAGE_BEFORE_RE.search(text, max(0, start - 20), start) or _LANGUAGE_AFTER_RE.match(text, end):
            continue
        party = re.match(r"\s+(?:party|voters?|supporters?|members?)\b", text[end:], re.IGNORECASE)
        if w.title() in _PARTY_WORDS and not party and (lower or _SENTENCE_START_RE.search(text, 0, start)):
            continue  # "Green tea", "polish the table": a party only before "party" or capitalised mid-sentence
        if _needed_by_rules(text, start, end):
            continue  # "why are Muslims ...": the harm rules read the group; it stays in clear
        yield Span("NRP", start, end, w)
    if "." in text:
        for m in _URL_RE.finditer(text):
            url = m.group(0).rstrip(".,;:!?")
            host = re.sub(r"^https?://", "", url).split("/")[0].split(":")[0].lower()
            host = host[4:] if host.startswith("www.") else host
            if _PUBLIC_SITES.search(host) or _FILE_EXT.search(url) or re.fullmatch(r"[\d.]+", host):
                continue
            yield Span("URL", m.start(), m.start() + len(url), url)
    if _ORG_HINT_RE.search(text):
        for m in _ORG_RE.finditer(text):
            yield Span("ORGANIZATION", m.start(), m.end(), m.group(0), rule=True)
    if not _AFTER_HINT_RE.search(text):
        return
    after = ((_PLACE_AFTER_LOWER_RE, "LOCATION"), (_ORG_AFTER_LOWER_RE, "ORGANIZATION")) if lower else ()
    for rx, type_ in ((_PLACE_AFTER_RE, "LOCATION"), (_ORG_AFTER_RE, "ORGANIZATION")) + after:
        for m in rx.finditer(text):
            k = next(i for i, g in enumerate(m.groups(), start=1) if g)
            v = m.group(k).rstrip(".,")
            if v.split()[0] not in _NOT_CITY:
                yield Span(type_, m.start(k), m.start(k) + len(v), v, rule=True)
