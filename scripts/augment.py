"""Targeted augmentation: labelled reviews that show the small model what 14k reviews rarely do.

Writes three TSV files (columns label, kind, text) for `xinsheng train --data`:

- contrast.tsv: two clauses of opposite polarity joined by a contrast word (…，但是… /
  虽然…，但是… / …，不过… / …，可是… / …，然而…), labelled by the second clause, which
  decides in Chinese as in the reviews the model gets wrong.
- negation.tsv: a clause whose polarity rests on an NTUSD lexicon word after a degree adverb,
  with the adverb replaced by a negation (不 / 不太 / 并不 / 一点都不) and the label flipped:
  很好 → 不好 is negative, 太差 → 不差 is praise.
- emoji.tsv: clauses with emoji of their own polarity appended, and clauses the teacher is
  unsure of made clear by emoji (👍 / 😡 …), so that emoji become tokens with a meaning.

Sources, all from training data only (never valid or test): the comma-separated clauses of
data/train.tsv (for negation), the clause crops of data/teacher/transfer.tsv with the
teacher's P(positive) (a clause counts as positive at
p >= 0.85, negative at p <= 0.15), and the simplified NTUSD lexicon in data/lexicons/ntusd/.
Deterministic for a given --seed.

    python3 scripts/augment.py [--out data/augment] [--seed 0] [--contrast 5000] [--negation 5000] [--emoji 2000]
"""

import argparse
import collections
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRAST_WORDS = ("但", "可是", "不过", "然而", "虽然", "却", "只是")
NEGATORS = set("不没无非别未莫勿")
DEGREE = ("非常", "特别", "十分", "相当", "比较", "很", "太", "挺", "真", "超", "蛮", "还")
NEGATIONS = ("不", "不太", "并不", "一点都不")
TEMPLATES = (
    "{a}，但是{b}",
    "{a}，但{b}",
    "虽然{a}，但是{b}",
    "虽然{a}，可是{b}",
    "{a}，不过{b}",
    "{a}，可是{b}",
    "{a}，然而{b}",
)
POSITIVE_EMOJI = "👍😍❤️😊🥰👏💯🎉😄🌟"
NEGATIVE_EMOJI = "👎😡😠🙄😤💔😞🤮😒💢"


def emoji_list(s):
    # ❤️ is two code points; keep it whole.
    return re.findall(r".\ufe0f?", s)


def clauses(path):
    """(text, p_positive) of the clause crops that are one short Chinese clause (4–20 characters)."""
    out = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        col = {name: i for i, name in enumerate(header)}
        for line in f:
            row = line.rstrip("\n").split("\t")
            if row[col["kind"]] != "clause":
                continue
            text = re.sub(r"^[，。！？；,.!?;、~～…\s]+|[，。！？；,.!?;、~～…\s]+$", "", row[col["text"]].strip())
            cjk = sum("\u4e00" <= c <= "\u9fff" for c in text)
            # One clause of Chinese: no sentence break or space inside, mostly Chinese characters.
            if 4 <= len(text) <= 20 and cjk >= 0.8 * len(text) and not re.search(r"[。！？；!?;\s]", text):
                out.append((text, float(row[col["p_positive"]])))
    return out


def lexicon(path, min_count, corpus):
    """Simplified NTUSD words of 1–2 characters, free of negators and degree adverbs, that occur
    at least `min_count` times in the training texts."""
    words = {
        w.strip()
        for w in open(path, encoding="utf-8")
        if 1 <= len(w.strip()) <= 2 and not (NEGATORS | set("很太挺真超还")) & set(w.strip())
    }
    counts = collections.Counter()
    for text in corpus:
        for n in (1, 2, 3):
            for i in range(len(text) - n + 1):
                piece = text[i : i + n]
                if piece in words:
                    counts[piece] += 1
    return sorted(w for w in words if counts[w] >= min_count)


def negatable(text, words):
    """Where the clause's first "degree adverb + lexicon word" (很方便, 太差) stands, as
    (before, word, after), or None. Requiring the adverb keeps to adjectives and stative verbs
    in predicate position, where 不 in its place reads naturally (不方便, 不差)."""
    if NEGATORS & set(text) or any(c in text for c in CONTRAST_WORDS):
        return None
    for word in words:
        for degree in DEGREE:
            start = text.find(degree + word)
            if start >= 0:
                return text[:start], word, text[start + len(degree) + len(word) :]
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "data/augment"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contrast", type=int, default=5000)
    parser.add_argument("--negation", type=int, default=5000)
    parser.add_argument("--emoji", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    pool = clauses(ROOT / "data/teacher/transfer.tsv")
    positive = [t for t, p in pool if p >= 0.85]
    negative = [t for t, p in pool if p <= 0.15]
    unsure = [t for t, p in pool if 0.3 <= p <= 0.7]
    plain = lambda ts: [t for t in ts if not any(c in t for c in CONTRAST_WORDS)]
    positive, negative, unsure = plain(positive), plain(negative), plain(unsure)
    print(f"clauses: {len(positive)} positive, {len(negative)} negative, {len(unsure)} unsure", file=sys.stderr)
    forbidden = set()
    for split in ("valid", "test"):
        with open(ROOT / f"data/{split}.tsv", encoding="utf-8") as f:
            forbidden.update(line.rstrip("\n").split("\t", 1)[1] for line in f)

    def unique(rows, n):
        """Up to n distinct rows (the generators repeat themselves once the pool runs dry)."""
        seen, out = set(), []
        for _, row in zip(range(50 * n), rows):
            if row[2] not in seen and row[2] not in forbidden:
                seen.add(row[2])
                out.append(row)
            if len(out) == n:
                break
        return out

    def contrast_rows():
        while True:
            second_positive = rng.random() < 0.5
            a = rng.choice(negative if second_positive else positive)
            b = rng.choice(positive if second_positive else negative)
            text = rng.choice(TEMPLATES).format(a=a, b=b) + "。"
            yield ("positive" if second_positive else "negative", "contrast", text)

    corpus = [line.rstrip("\n").split("\t", 1)[1] for line in open(ROOT / "data/train.tsv", encoding="utf-8")][1:]
    lex = ROOT / "data/lexicons/ntusd"
    pos_words = lexicon(lex / "positive-simplified.txt", 20, corpus)
    neg_words = lexicon(lex / "negative-simplified.txt", 20, corpus)
    pos_words, neg_words = [w for w in pos_words if w not in neg_words], [w for w in neg_words if w not in pos_words]
    # Longer words first, so 方便 wins over 便.
    pos_words.sort(key=len, reverse=True)
    neg_words.sort(key=len, reverse=True)
    print(f"lexicon words in use: {len(pos_words)} positive, {len(neg_words)} negative", file=sys.stderr)

    # Negation sites: the confident clauses, and every comma-clause of a training review whose
    # lexicon word agrees with the review's gold label.
    labelled = [line.rstrip("\n").split("\t", 1) for line in open(ROOT / "data/train.tsv", encoding="utf-8")][1:]
    pieces = {True: list(positive), False: list(negative)}
    for label, review in labelled:
        for piece in re.split(r"[，。！？；,.!?;~～…\s]+", review):
            if 4 <= len(piece) <= 20:
                pieces[label == "positive"].append(piece)
    sites = {
        True: sorted({x for x in (negatable(t, pos_words) for t in pieces[True]) if x}),
        False: sorted({x for x in (negatable(t, neg_words) for t in pieces[False]) if x}),
    }
    print(f"negatable clauses: {len(sites[True])} positive, {len(sites[False])} negative", file=sys.stderr)

    def negation_rows():
        while True:
            was_positive = rng.random() < 0.5
            before, word, after = rng.choice(sites[was_positive])
            text = before + rng.choice(NEGATIONS) + word + after
            yield ("negative" if was_positive else "positive", "negation", text + "。")

    def emoji_rows():
        pos_e, neg_e = emoji_list(POSITIVE_EMOJI), emoji_list(NEGATIVE_EMOJI)
        while True:
            label = "positive" if rng.random() < 0.5 else "negative"
            source = unsure if rng.random() < 0.5 else (positive if label == "positive" else negative)
            marks = "".join(rng.choice(pos_e if label == "positive" else neg_e) for _ in range(rng.randint(1, 3)))
            yield (label, "emoji", rng.choice(source) + marks)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows, n in (
        ("contrast", contrast_rows(), args.contrast),
        ("negation", negation_rows(), args.negation),
        ("emoji", emoji_rows(), args.emoji),
    ):
        kept = unique(rows, n)
        with open(out / f"{name}.tsv", "w", encoding="utf-8") as f:
            f.write("label\tkind\ttext\n")
            f.writelines("\t".join(r) + "\n" for r in kept)
        print(f"wrote {out / (name + '.tsv')}: {len(kept)} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
