"""Build the "next token is a unit of measurement" prompt set from real text (gensim's lee + enwiki).

    python examples/units/build.py

Every prompt is a verbatim prefix of a corpus sentence, cut right after a number:
positives where the next word is a unit (physical, time, percent, degrees,
currency), hard negatives where it is an ordinary lowercase word ("240 people").
Each row records where it was cut (document, character span, next word), so the
cut can be checked against the corpus; ``metadata.doc`` (the document: its
prefixes share a split) and ``metadata.source`` (the corpus, a covariate). Deterministic: the same corpus gives the
same file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from interp_lab.io.datasets import iter_documents

HERE = Path(__file__).parent
UNIT_WORDS = {
    # length, area, volume, mass
    "km", "kilometre", "kilometres", "kilometer", "kilometers", "metre", "metres", "meter", "meters", "m", "cm", "mm",
    "mile", "miles", "feet", "foot", "ft", "inch", "inches", "yard", "yards", "hectare", "hectares", "acre", "acres",
    "kg", "kilogram", "kilograms", "gram", "grams", "g", "tonne", "tonnes", "ton", "tons", "lb", "lbs", "litre",
    "litres", "liter", "liters", "gallon", "gallons",
    # time
    "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months",
    "year", "years", "decade", "decades", "century", "centuries",
    # rates, percent, degrees, energy
    "percent", "per", "%", "degree", "degrees", "mph", "knots", "volts", "watts", "megawatts", "kW", "MW", "GW",
    "Hz", "kHz", "MHz",
    # currency
    "dollar", "dollars", "cent", "cents", "euro", "euros", "pound", "pounds", "yen", "peso", "pesos", "rupees",
}
NUMBER = re.compile(r"(?<![\w.,])(\d+(?:,\d{3})*(?:\.\d+)?)(?=(\s?)([A-Za-z%]+))")
PER_CENT = re.compile(r"\s?per\s+cent\b")


def sentence_start(text: str, pos: int) -> int:
    """Index where the sentence holding ``pos`` begins (after '. ', '! ', '? ' or a newline)."""
    cut = max(text.rfind(". ", 0, pos), text.rfind("! ", 0, pos), text.rfind("? ", 0, pos), text.rfind("\n", 0, pos))
    start = 0 if cut < 0 else cut + (1 if text[cut] == "\n" else 2)
    while start < pos and text[start].isspace():
        start += 1
    return start


def rank(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def main(per_class: int = 400) -> None:
    pos, neg = [], []
    for doc in iter_documents("lee+enwiki"):
        text = doc.text
        for m in NUMBER.finditer(text):
            word = m.group(3)
            end = m.end(1)
            start = sentence_start(text, m.start(1))
            prefix = text[start:end]
            if not 20 <= len(prefix) <= 300 or "\n" in prefix:
                continue
            is_unit = word in UNIT_WORDS and (word != "per" or PER_CENT.match(text, end))
            if not is_unit and not (word.isalpha() and word.islower() and len(word) > 2):
                continue
            row = {"prompt_id": f"{doc.prompt_id}@{start}-{end}", "text": prefix,
                   "labels": {"next_word": word, "expected": "unit" if is_unit else "non_unit",
                              "corpus": doc.labels.get("corpus")},
                   "metadata": {"doc": doc.prompt_id, "source": doc.labels.get("corpus"),
                                "char_start": start, "char_end": end}}
            (pos if is_unit else neg).append(row)
    # at most 60 prompts per unit word, so "%" and "years" do not crowd out the physical units
    kept, per_word = [], {}
    for r in sorted(pos, key=lambda r: rank(r["prompt_id"])):
        w = r["labels"]["next_word"]
        if per_word.get(w, 0) < 60:
            per_word[w] = per_word.get(w, 0) + 1
            kept.append(r)
    pos = kept[:per_class]
    neg = sorted(neg, key=lambda r: rank(r["prompt_id"]))[:per_class]
    rows = sorted(pos + neg, key=lambda r: r["prompt_id"])
    with open(HERE / "prompts.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(pos)} unit prefixes, {len(neg)} hard negatives -> {HERE / 'prompts.jsonl'}")


if __name__ == "__main__":
    main()
