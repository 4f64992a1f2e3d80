"""Linear baselines, xinsheng bundles and averages of their probabilities on the validation
and test splits. Ensembles are ranked by validation accuracy, as a model would be chosen;
the best test accuracy of any ensemble is printed too, as an optimistic ceiling."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression


def load(path):
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f][1:]
    return [text for _, text in rows], np.array([label == "positive" for label, _ in rows])


def bundle_probs(model, texts):
    """P(positive) for each text from `xinsheng predict`, one text per line on stdin."""
    out = subprocess.run(
        [os.environ["XINSHENG_BIN"], "predict", "--model", model],
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    probs = [json.loads(line)["probs"]["positive"] for line in out.splitlines()]
    assert len(probs) == len(texts), f"{model}: {len(probs)} predictions for {len(texts)} texts"
    return np.array(probs)


def main(models):
    train, y_train = load("data/train.tsv")
    valid, y_valid = load("data/valid.tsv")
    test, y_test = load("data/test.tsv")
    for text in valid + test:
        assert "\n" not in text
    scores = {}

    tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    fitted = LogisticRegression(C=10, max_iter=3000).fit(tfidf.fit_transform(train), y_train)
    scores["tfidf-lr"] = [fitted.predict_proba(tfidf.transform(t))[:, 1] for t in (valid, test)]

    # NBSVM (Wang & Manning 2012): binary n-gram features scaled by their log-count ratio.
    counts = CountVectorizer(analyzer="char", ngram_range=(1, 3), binary=True)
    x = counts.fit_transform(train)
    pos, neg = 1 + x[y_train].sum(0), 1 + x[~y_train].sum(0)
    ratio = sparse.diags(np.asarray(np.log((pos / pos.sum()) / (neg / neg.sum()))).ravel())
    fitted = LogisticRegression(C=0.3, max_iter=3000).fit(x @ ratio, y_train)
    scores["nbsvm"] = [fitted.predict_proba(counts.transform(t) @ ratio)[:, 1] for t in (valid, test)]

    for model in models:
        scores[model] = [bundle_probs(model, t) for t in (valid, test)]

    def accuracy(probs, truth):
        return float(((probs > 0.5) == truth).mean())

    def row(name, members):
        v = np.mean([scores[m][0] for m in members], 0)
        t = np.mean([scores[m][1] for m in members], 0)
        return accuracy(v, y_valid), accuracy(t, y_test), name

    print("| model | validation accuracy | test accuracy |\n|---|---|---|")
    for name in scores:
        v, t, _ = row(name, [name])
        print("| %s | %.4f | %.4f |" % (name, v, t))
    ensembles = [
        row(" + ".join(members), members)
        for k in range(2, len(scores) + 1)
        for members in itertools.combinations(scores, k)
    ]
    ensembles.sort(key=lambda r: -r[0])
    print("\nAverages of probabilities, best five by validation accuracy:\n")
    print("| ensemble | validation accuracy | test accuracy |\n|---|---|---|")
    for v, t, name in ensembles[:5]:
        print("| %s | %.4f | %.4f |" % (name, v, t))
    v, t, name = max(ensembles, key=lambda r: r[1])
    print("\nHighest test accuracy of any of the %d ensembles: %.4f (%s)" % (len(ensembles), t, name))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: scripts/accuracy-study BUNDLE [BUNDLE ...]")
    main(sys.argv[1:])
