"""The demo's generated language and its sentiment task: pseudo-words, a polarity lexicon, templates.

Nothing here is copied text. A fixed lexicon (drawn once from LEXICON_SEED) gives pseudo-word nouns, verbs,
neutral adjectives and positive/negative adjectives; templates put them into short reviews whose label is the
polarity of their sentiment words, flipped by "not", and decided by the clause after "but" in contrasts. The
same generator feeds the hosts' pre-training (unlabelled text, and the task family under other prompts) and
the demo task (`sentiment: <text>` -> positive / negative), so a module only has to learn the prompt and the
verbaliser.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LEXICON_SEED = 20240601
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
FUNCTION_WORDS = (
    "the a this that it i we was is were and but not very really quite so too found felt thought near with "
    "of to for all some every one more less than , . positive negative good bad yes no result test charge "
    "came back"
).split()
DEMO_TEMPLATE = "sentiment: {text}"
DEMO_LABELS = ("negative", "positive")
NEGATION_SHARE, CONTRAST_SHARE = 0.15, 0.10


@dataclass(frozen=True)
class Lexicon:
    """The generated vocabulary by role; polarity lives only in `positive` and `negative`."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    neutral: tuple[str, ...]
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]

    def words(self) -> list[str]:
        """Every word any generator here can emit, prompts and verbalisers included: the tokenizer's words."""
        prompts = "sentiment review opinion copy reverse first word : </s>".split()
        out: list[str] = []
        roles = (self.positive, self.negative, self.neutral, self.nouns, self.verbs)
        for w in (*FUNCTION_WORDS, *prompts, *(w for role in roles for w in role)):
            if w not in out and w != "</s>":
                out.append(w)
        return out


def make_lexicon(seed: int = LEXICON_SEED, sizes: tuple[int, ...] = (24, 24, 24, 48, 16)) -> Lexicon:
    """Draw distinct pseudo-words (2-3 consonant-vowel syllables) for each role."""
    rng = np.random.default_rng(seed)
    seen = set(FUNCTION_WORDS)
    groups = []
    for size in sizes:
        group: list[str] = []
        while len(group) < size:
            word = "".join(rng.choice(list(CONSONANTS)) + rng.choice(list(VOWELS))
                           for _ in range(int(rng.integers(2, 4))))
            if word not in seen:
                seen.add(word)
                group.append(word)
        groups.append(tuple(group))
    return Lexicon(*groups)


def review(rng: np.random.Generator, lex: Lexicon) -> tuple[str, int]:
    """One short review and its label (1 positive, 0 negative)."""
    label = int(rng.integers(2))
    pick = lambda words: str(words[int(rng.integers(len(words)))])  # noqa: E731
    pol = lambda lab: pick(lex.positive if lab else lex.negative)  # noqa: E731
    n, n2, a, v = pick(lex.nouns), pick(lex.nouns), pick(lex.neutral), pick(lex.verbs)
    intens = pick(("very ", "really ", "quite ", "so ", "", "", ""))
    roll = rng.random()
    if roll < NEGATION_SHARE:
        text = pick((f"the {n} was not {pol(1 - label)}", f"it is not a {pol(1 - label)} {n}",
                     f"i thought the {a} {n} was not {intens}{pol(1 - label)}"))
    elif roll < NEGATION_SHARE + CONTRAST_SHARE:
        text = pick((f"the {n} was {pol(1 - label)} but the {n2} was {pol(label)}",
                     f"{pol(1 - label)} {n} but {intens}{pol(label)} {n2}"))
    else:
        text = pick((f"the {n} was {intens}{pol(label)}", f"this {n} is {pol(label)}",
                     f"a {pol(label)} and {pol(label)} {n}",
                     f"the {n} {v} the {a} {n2} and it was {pol(label)}",
                     f"i found the {n} {intens}{pol(label)}", f"{pol(label)} {n} , {a} {n2}",
                     f"we felt the {a} {n} was {pol(label)} too"))
    return text, label


def neutral_sentence(rng: np.random.Generator, lex: Lexicon) -> str:
    """A sentence without sentiment, for span-corruption pre-training (verbaliser words in other senses)."""
    pick = lambda words: str(words[int(rng.integers(len(words)))])  # noqa: E731
    n, n2, a, v = pick(lex.nouns), pick(lex.nouns), pick(lex.neutral), pick(lex.verbs)
    return pick((f"the {n} {v} the {a} {n2}", f"a {a} {n} {v} near the {n2}", f"{n} and {n2} were {a}",
                 f"the {n} test came back {pick(('positive', 'negative'))}", f"some {n} {v} every {a} {n2}",
                 f"a {pick(('positive', 'negative'))} charge {v} the {n}", f"this {n} is {a} and {a}",
                 f"one {n} {v} with the {n2} of the {a} {n}"))


def demo_rows(n: int, seed: int, lex: Lexicon | None = None) -> list[dict]:
    """n labelled reviews as {"text", "label"} rows, drawn from `seed`."""
    lex = lex or make_lexicon()
    rng = np.random.default_rng([seed, 7])
    return [dict(zip(("text", "label"), review(rng, lex), strict=True)) for _ in range(n)]


def write_demo_task(out_dir: Path, *, seed: int = 0, n_train: int = 2000, n_eval: int = 500) -> Path:
    """Write train.jsonl / validation.jsonl of the demo task (see DEMO_TEMPLATE, DEMO_LABELS)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = demo_rows(n_train + n_eval, seed)
    for name, part in (("train", rows[:n_train]), ("validation", rows[n_train:])):
        tmp = out_dir / f".{name}.jsonl.{os.getpid()}"
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in part))
        os.replace(tmp, out_dir / f"{name}.jsonl")
    return out_dir
