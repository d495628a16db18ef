"""Writes ``topics.tsv``: a synthetic labelled text example, one ``LABEL<TAB>TEXT`` line per record.

Four topics whose sentences mix topic words with shared filler words, plus what real text has:
personal data (e-mail addresses, phone numbers), empty lines and empty texts, exact and
case-only duplicates, labels outside the schema and lines without a label. Deterministic:
``python docs/examples/make_topics.py [N_LINES] [OUT]`` gives the same file every time.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

TOPICS = {
    "sports": "match goal team coach league score player season referee stadium keeper striker "
              "tournament penalty trophy fans".split(),
    "tech": "software chip laptop server network code cloud battery screen update startup robot "
            "algorithm browser database processor".split(),
    "food": "recipe bread cheese soup kitchen chef flavour spicy dessert butter garlic oven "
            "noodles salad baking sauce".split(),
    "travel": "flight hotel beach passport island train luggage museum journey airport guide "
              "mountain ticket border ferry village".split(),
}
FILLER = ("the a this that we they it was is very really quite some many new old great small big "
          "today yesterday again still just about after before with from our their").split()


def sentence(rng: random.Random, topic: str) -> str:
    n = rng.randint(6, 14)
    words = [rng.choice(TOPICS[topic]) if rng.random() < 0.35 else rng.choice(FILLER) for _ in range(n)]
    for i in rng.sample(range(n), 2):          # at least two topic words
        words[i] = rng.choice(TOPICS[topic])
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def personal(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f" Write to {rng.choice(['ana', 'bo', 'chen', 'dev'])}.{rng.randint(1, 99)}@example.org"
    return f" Call +44 20 7946 {rng.randint(1000, 9999)}"


def lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        topic = rng.choice(list(TOPICS))
        draw = rng.random()
        if draw < 0.01:
            out.append("")                                             # empty line: wrong_field_count
        elif draw < 0.02:
            out.append(f"{topic}\t   ")                                # empty text: empty_text
        elif draw < 0.03:
            out.append(sentence(rng, topic))                           # no label: wrong_field_count
        elif draw < 0.04:
            out.append(f"music\t{sentence(rng, topic)}")              # label_not_allowed
        elif draw < 0.05 and out:
            out.append(rng.choice([ln for ln in out if "\t" in ln] or out))   # exact duplicate
        elif draw < 0.06 and out:
            label, _, text = rng.choice([ln for ln in out if "\t" in ln] or ["x\t"]).partition("\t")
            out.append(f"{label}\t  {text.upper()} ")                  # duplicate once cleaned
        else:
            text = sentence(rng, topic) + (personal(rng) if rng.random() < 0.08 else "")
            out.append(f"{topic}\t{text}")
    return out


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 2000
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("topics.tsv")
    out.write_text("\n".join(lines(n)) + "\n")
    print(f"wrote {n} lines to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
