"""Options that cannot train and output paths that cannot be written are refused by the core's one
check before any work, in the CLI's words (issue 23)."""

import subprocess

import numpy as np
import pytest

import xinsheng
from conftest import ROOT, cli_binary, review_texts

TINY = ROOT / "tests" / "fixtures" / "tiny.csv"
LR = "the learning rate (lr) must be a finite number above 0, got"

BAD = [
    (dict(lr=float("nan")), ["--lr", "nan"], f"{LR} NaN"),
    (dict(lr=-1.0), ["--lr=-1"], f"{LR} -1"),
    (dict(lr=float("inf")), ["--lr", "inf"], f"{LR} inf"),
    (dict(epochs=0), ["--epochs", "0"], "epochs must be at least 1, got 0"),
    (dict(batch_size=0), ["--batch-size", "0"], "the batch size must be at least 1, got 0"),
    (dict(patience=0), ["--patience", "0"], "patience must be at least 1, got 0"),
]


def cli_error(args):
    done = subprocess.run([cli_binary(), *args], capture_output=True, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    return done.stderr.decode().strip().removeprefix("error: ")


@pytest.mark.parametrize("options,flags,message", BAD, ids=[m for _, _, m in BAD])
def test_train_refuses_what_the_cli_refuses_in_the_same_words(tmp_path, options, flags, message):
    with pytest.raises(ValueError) as refused:
        xinsheng.train(TINY, tmp_path / "never", min_freq=1, **options)
    assert str(refused.value).startswith(message)
    assert str(refused.value) == cli_error(["train", "--data", str(TINY), "--out", str(tmp_path / "never"), *flags])
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("options,flags,message", BAD, ids=[m for _, _, m in BAD])
def test_finetune_refuses_them_and_keeps_the_model(tmp_path, options, flags, message):
    clf = xinsheng.Classifier.load()
    texts = review_texts(4)
    before = clf.predict_proba(texts)
    with pytest.raises(ValueError) as refused:
        clf.finetune(["还行吧"], ["positive"], **options)
    assert str(refused.value) == cli_error(["finetune", "--data", str(TINY), "--out", str(tmp_path / "never"), *flags])
    assert str(refused.value).startswith(message)
    assert np.array_equal(clf.predict_proba(texts), before)


def test_train_refuses_an_output_path_it_could_not_write_before_training(tmp_path):
    existing = tmp_path / "a.csv"
    existing.write_text("text,label\n", encoding="utf-8")
    seen = []
    with pytest.raises(ValueError, match="it is a file, not a directory") as refused:
        xinsheng.train(TINY, existing, min_freq=1, epochs=1, progress=seen.append)
    assert seen == [], "no epoch ran"
    assert str(refused.value) == cli_error(["train", "--data", str(TINY), "--out", str(existing)])
    assert existing.read_text(encoding="utf-8") == "text,label\n"
    # save() follows the same rule.
    with pytest.raises(ValueError, match="it is a file, not a directory"):
        xinsheng.Classifier.load().save(existing)


def stub_keywords(*path):
    """The keyword-only parameters of a function in ``_native.pyi``, with their literal defaults."""
    import ast

    tree = ast.parse((ROOT / "crates" / "xinsheng-py" / "python" / "xinsheng" / "_native.pyi").read_text("utf-8"))
    scope = tree.body
    for name in path[:-1]:
        scope = next(n for n in scope if isinstance(n, ast.ClassDef) and n.name == name).body
    fn = next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == path[-1])
    return {a.arg: ast.literal_eval(d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults)}


@pytest.mark.parametrize(
    "path,defaults,own",
    [
        (("train",), xinsheng.train_defaults, {"valid", "teacher", "precision", "progress"}),
        (("Classifier", "finetune"), xinsheng.finetune_defaults,
         {"valid_texts", "valid_labels", "add_labels", "progress"}),
    ],
    ids=["train", "finetune"],
)
def test_the_stubs_list_every_core_option_with_its_default(path, defaults, own):
    # The options are the core's schema; the stub documents them and must follow it.
    stub = {k: v for k, v in stub_keywords(*path).items() if k not in own}
    core = defaults()
    assert sorted(stub) == sorted(core)
    for name, value in core.items():
        # An empty default (no label map) is written None in the stub.
        assert stub[name] == (None if value == "" else value), name


def test_unknown_options_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown training option 'hiden' \(expected arch, batch_size, "):
        xinsheng.train(TINY, hiden=3)
    clf = xinsheng.Classifier.load()
    with pytest.raises(ValueError, match=r"unknown fine-tuning option 'epoch' \(expected batch_size, epochs, "):
        clf.finetune(["好"], ["positive"], epoch=1)
    with pytest.raises(ValueError, match=r"training option 'hidden': invalid type: string \"x\""):
        xinsheng.train(TINY, hidden="x")


def test_evaluate_gives_the_clis_eval_figures():
    import csv
    import json

    with open(TINY, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    clf = xinsheng.Classifier.load()
    mine = clf.evaluate([r["text"] for r in rows], [r["label"] for r in rows])
    done = subprocess.run([cli_binary(), "eval", "--data", str(TINY), "--json"], capture_output=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert mine == json.loads(done.stdout)
    with pytest.raises(ValueError, match="unknown label 'meh'"):
        clf.evaluate(["好", "坏"], ["positive", "meh"])
