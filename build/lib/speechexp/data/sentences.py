"""A seeded English sentence bank built from a small hand-written grammar.

Sentences are short (about 4 to 10 words) everyday statements and questions, so that a
CPU-sized ASR model can learn them; the word lists hold a few hundred distinct words.
"""

from __future__ import annotations

import random
import re

NAMES = (
    "anna", "ben", "carla", "david", "emma", "frank", "grace", "henry", "iris", "jack",
    "kate", "leo", "maria", "nick", "olivia", "peter", "rosa", "sam", "tina", "victor",
    "wendy", "oscar", "lucy", "martin", "nora", "paul", "ruth", "simon", "helen", "tom",
)
RELATIONS = (
    "mother", "father", "sister", "brother", "uncle", "aunt", "cousin", "neighbour",
    "teacher", "doctor", "friend", "boss", "grandmother", "grandfather", "landlord",
)
NOUNS = (
    "book", "cup", "chair", "table", "window", "door", "letter", "phone", "bottle", "box",
    "coat", "hat", "key", "lamp", "map", "ticket", "bag", "bike", "car", "train", "boat",
    "dog", "cat", "horse", "bird", "fish", "apple", "bread", "cake", "cheese", "coffee",
    "soup", "clock", "radio", "picture", "garden", "flower", "tree", "stone", "shirt",
    "shoe", "pencil", "paper", "basket", "candle", "mirror", "blanket", "pillow", "camera",
    "guitar", "piano", "ball", "kite", "wallet", "umbrella", "jacket", "bucket", "ladder",
    "hammer", "rope", "plate", "spoon", "knife", "fork", "kettle", "parcel", "envelope",
    "newspaper", "magazine", "computer", "notebook", "sandwich", "orange", "lemon", "carrot",
    "potato", "tomato", "onion", "egg", "biscuit",
)
ADJECTIVES = (
    "red", "blue", "green", "yellow", "black", "white", "brown", "small", "large", "old",
    "new", "heavy", "light", "warm", "cold", "wet", "dry", "clean", "dirty", "broken",
    "empty", "full", "quiet", "noisy", "bright", "dark", "soft", "hard", "sweet", "sour",
    "cheap", "expensive", "strange", "famous", "tiny", "huge", "round", "square", "long",
    "short", "fresh", "shiny", "plain", "striped", "wooden", "golden", "silver", "rusty",
    "lovely", "funny",
)
# (base, past) pairs of transitive verbs
TRANSITIVE = (
    ("take", "took"), ("bring", "brought"), ("find", "found"), ("lose", "lost"),
    ("open", "opened"), ("close", "closed"), ("carry", "carried"), ("paint", "painted"),
    ("clean", "cleaned"), ("fix", "fixed"), ("buy", "bought"), ("sell", "sold"),
    ("hide", "hid"), ("move", "moved"), ("drop", "dropped"), ("wash", "washed"),
    ("throw", "threw"), ("catch", "caught"), ("send", "sent"), ("borrow", "borrowed"),
    ("return", "returned"), ("forget", "forgot"), ("keep", "kept"), ("check", "checked"),
    ("fill", "filled"), ("lift", "lifted"), ("pack", "packed"), ("hold", "held"),
    ("push", "pushed"), ("pull", "pulled"), ("cover", "covered"), ("cut", "cut"),
    ("draw", "drew"), ("want", "wanted"), ("need", "needed"), ("like", "liked"),
)
# (base, past) pairs of intransitive verbs
INTRANSITIVE = (
    ("arrive", "arrived"), ("leave", "left"), ("sleep", "slept"), ("sing", "sang"),
    ("dance", "danced"), ("laugh", "laughed"), ("cry", "cried"), ("wait", "waited"),
    ("run", "ran"), ("walk", "walked"), ("swim", "swam"), ("work", "worked"),
    ("smile", "smiled"), ("shout", "shouted"), ("whisper", "whispered"), ("rest", "rested"),
    ("cook", "cooked"), ("read", "read"), ("travel", "travelled"), ("stay", "stayed"),
)
PLACES = (
    "kitchen", "garden", "station", "library", "market", "office", "park", "school",
    "church", "bakery", "hospital", "harbour", "bridge", "river", "forest", "beach",
    "village", "city", "museum", "cinema", "hotel", "airport", "corner", "hallway",
    "garage", "cellar", "attic", "bathroom", "bedroom", "square", "farm", "shop",
    "theatre", "stadium", "castle", "lake", "mountain", "valley", "island", "road",
)
TIMES = (
    "today", "yesterday", "tomorrow", "tonight", "this morning", "last night",
    "on monday", "on tuesday", "on wednesday", "on thursday", "on friday", "on saturday",
    "on sunday", "after lunch", "before dinner", "at noon", "in the evening", "next week",
    "last year", "every day", "at midnight", "in april", "in july", "in october",
)
ADVERBS = (
    "quickly", "slowly", "quietly", "loudly", "happily", "calmly", "carefully", "early",
    "late", "again", "alone", "together", "outside", "upstairs", "downstairs", "often",
    "rarely", "suddenly", "finally", "gently",
)
FURNITURE = ("table", "shelf", "floor", "bed", "desk", "sofa", "bench", "counter", "roof", "wall")
PREPOSITIONS = ("near", "behind", "inside", "beside", "opposite", "outside")


def _pick(rng: random.Random, words: tuple) -> str:
    return words[rng.randrange(len(words))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _template(rng: random.Random) -> str:
    """One sentence from a randomly chosen template (lowercase, with punctuation)."""
    n1, n2 = _pick(rng, NOUNS), _pick(rng, NOUNS)
    adj = _pick(rng, ADJECTIVES)
    tb, tp = _pick(rng, TRANSITIVE)
    ib, ip = _pick(rng, INTRANSITIVE)
    name, name2 = _pick(rng, NAMES), _pick(rng, NAMES)
    rel, place, time = _pick(rng, RELATIONS), _pick(rng, PLACES), _pick(rng, TIMES)
    adv, furn, prep = _pick(rng, ADVERBS), _pick(rng, FURNITURE), _pick(rng, PREPOSITIONS)
    choice = rng.randrange(12)
    if choice == 0:
        return f"the {adj} {n1} is on the {furn}."
    if choice == 1:
        return f"{name} {tp} the {adj} {n1} {time}."
    if choice == 2:
        return f"my {rel} {ip} {adv} {time}."
    if choice == 3:
        return f"{name} and {name2} {ip} {prep} the {place}."
    if choice == 4:
        return f"did you {tb} the {n1} {time}?"
    if choice == 5:
        return f"please {tb} the {adj} {n1}."
    if choice == 6:
        return f"there is {_article(adj)} {adj} {n1} {prep} the {place}."
    if choice == 7:
        return f"we will {tb} the {n1} {time}."
    if choice == 8:
        return f"i {tp} {_article(adj)} {adj} {n1} at the {place}."
    if choice == 9:
        return f"don't {tb} my {n1} {time}."
    if choice == 10:
        return f"it's {_article(adj)} {adj} {n2} for my {rel}."
    return f"where is the {n1} you {tp} {time}?"


def sentence_bank(num_sentences: int, seed: int = 0) -> list[str]:
    """``num_sentences`` distinct sentences, identical for the same ``seed``.

    Each sentence starts with a capital letter and ends in '.' or '?'.
    """
    if num_sentences < 1:
        raise ValueError("num_sentences must be at least 1")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    attempts = 0
    while len(out) < num_sentences:
        attempts += 1
        if attempts > 200 * num_sentences + 10000:
            raise ValueError(f"the grammar cannot produce {num_sentences} distinct sentences")
        sentence = _template(rng)
        if sentence in seen:
            continue
        seen.add(sentence)
        out.append(sentence[0].upper() + sentence[1:])
    return out


def vocabulary_of(sentences: list[str]) -> set[str]:
    """The set of lowercase words used in ``sentences`` (punctuation removed)."""
    return {w for s in sentences for w in re.findall(r"[a-z']+", s.lower())}
