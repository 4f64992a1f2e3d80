"""The Python package against the CLI on the same bundles, and its errors."""

import shutil
from pathlib import Path

import numpy as np
import pytest

import xinsheng
from conftest import ROOT, cli_binary, cli_predict, review_texts

DEFAULT = ROOT / "models" / "default"
TINY = ROOT / "tests" / "fixtures" / "tiny.csv"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def clf():
    return xinsheng.Classifier.load()


def assert_same_as_cli(predictions, native):
    assert len(predictions) == len(native)
    for i, (p, n) in enumerate(zip(predictions, native)):
        assert p["label"] == n["label"], f"text {i}"
        for label, prob in n["probs"].items():
            assert abs(p["probs"][label] - prob) <= TOLERANCE, f"text {i}: P({label}) {p['probs'][label]} vs CLI {prob}"


def test_packaged_model_is_the_shipped_one(clf):
    assert clf.labels == ["negative", "neutral", "positive"]
    shipped = xinsheng.Classifier.load(DEFAULT)
    texts = review_texts(64)
    assert np.array_equal(clf.predict_proba(texts), shipped.predict_proba(texts))


def test_same_numbers_as_the_cli(clf):
    texts = review_texts(300) + ["不差", "质量很好，但是物流太慢了", "😀", "ＡＢＣ全角"]
    assert_same_as_cli(clf.predict(texts), cli_predict(texts))
    probs = clf.predict_proba(texts)
    assert probs.shape == (len(texts), len(clf.labels)) == (len(texts), 3) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    native = cli_predict(texts)
    expected = np.array([[n["probs"][label] for label in clf.labels] for n in native], dtype=np.float32)
    assert np.abs(probs - expected).max() <= TOLERANCE


def test_every_text_gets_a_prediction(clf):
    assert clf.predict_proba([]).shape == (0, 3)
    # Text without tokens reads as one unknown token: the same answer for each.
    empty = clf.predict(["", " ", "\u200b"])
    assert empty[0] == empty[1] == empty[2] and abs(sum(empty[0]["probs"].values()) - 1) < 1e-6
    # What the CLI can be given (it skips blank lines), the same numbers as the CLI; a tuple works.
    assert_same_as_cli(clf.predict(["😀", "元组也行"]), cli_predict(["😀", "元组也行"]))
    assert clf.predict(("元组也行",)) == clf.predict(["元组也行"])


def test_explain_matches_the_cli(clf):
    text = "这本书非常好看，物流也很快"
    explained = clf.explain(text)
    [native] = cli_predict([text], extra=["--explain"])
    assert [t["token"] for t in explained["tokens"]] == [t["token"] for t in native["tokens"]]
    for mine, theirs in zip(explained["tokens"], native["tokens"]):
        assert abs(mine["weight"] - theirs["weight"]) <= TOLERANCE
    assert explained["label"] == native["label"]


def test_explained_tokens_index_the_text_as_written(clf):
    text = "iPhone很好用ＡＢＣ①，物流ＯＫ！"
    explained = clf.explain(text)
    [native] = cli_predict([text], extra=["--explain"])
    read = [(t["token"], text[t["start"] : t["end"]]) for t in explained["tokens"]]
    assert read[0] == ("iphone", "iPhone") and ("abc1", "ＡＢＣ①") in read and ("ok", "ＯＫ") in read
    assert [(t["start"], t["end"]) for t in explained["tokens"]] == [(t["start"], t["end"]) for t in native["tokens"]]


def test_bad_input_raises_python_exceptions(clf, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        xinsheng.Classifier.load(tmp_path / "missing")
    truncated = tmp_path / "truncated.bpk"
    truncated.write_bytes((DEFAULT / "model.bpk").read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated.bpk"):
        xinsheng.Classifier.load(truncated)
    with pytest.raises(ValueError, match="not a readable burnpack"):
        xinsheng.Classifier.from_bytes(b"not a model", "upload")
    with pytest.raises(TypeError, match="not one string"):
        clf.predict("一条评论")
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        clf.predict_proba(["好", None])
    with pytest.raises(ValueError, match="differ in length"):
        clf.finetune(["好"], ["positive", "negative"])
    with pytest.raises(ValueError, match="unknown freeze"):
        clf.finetune(["好"], ["positive"], freeze="everything")
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        xinsheng.train(tmp_path / "nope.tsv")
    with pytest.raises(ValueError, match=r"missing-tab.tsv:\d+"):
        xinsheng.train(ROOT / "tests" / "fixtures" / "missing-tab.tsv")
    with pytest.raises(ValueError, match="unknown architecture"):
        xinsheng.train(TINY, arch="transformer")


def test_finetune_checks_labels_and_leaves_the_model_on_error(tmp_path):
    clf = xinsheng.Classifier.load()
    texts = review_texts(8)
    before = clf.predict_proba(texts)
    with pytest.raises(ValueError, match="'无关' is new to the model .*add_labels=True"):
        clf.finetune(["快递到了没"], ["无关"])
    with pytest.raises(ValueError, match="'Positive'.*positive"):
        clf.finetune(["很好"], ["Positive"])
    assert np.array_equal(clf.predict_proba(texts), before)

    seen = []
    done = clf.finetune(["快递到了没", "今天周几", "很好", "太差"], ["无关", "无关", "positive", "negative"],
                        epochs=2, add_labels=True, progress=seen.append)
    assert done["added_labels"] == ["无关"] and done["epochs_run"] == 2
    assert [e["epoch"] for e in seen] == [1, 2] and all(e["stage"] == "epoch" for e in seen)
    assert clf.labels == ["negative", "neutral", "positive", "无关"]
    assert clf.predict_proba(texts).shape == (8, 4)

    # Saved and reloaded, the model gives the CLI's numbers.
    written = clf.save(tmp_path / "tuned", precision="f32")
    assert written == tmp_path / "tuned" / "model.bpk"
    assert_same_as_cli(clf.predict(texts), cli_predict(texts, model=written))


def test_train_mirrors_the_cli(tmp_path):
    import subprocess

    options = dict(arch="gru", embed_dim=8, hidden=8, epochs=2, min_freq=1)
    trained = xinsheng.train([TINY], tmp_path / "py", **options)
    assert trained.labels == ["negative", "positive"]
    subprocess.run([cli_binary(), "train", "--data", str(TINY), "--arch", "gru", "--embed-dim", "8", "--hidden", "8",
                    "--epochs", "2", "--min-freq", "1", "--out", str(tmp_path / "cli")],
                   check=True, capture_output=True, cwd=ROOT)
    texts = ["很好", "太差了", "非常满意"]
    from_cli = xinsheng.Classifier.load(tmp_path / "cli")
    # Same data, options and seed: the same model as the CLI's, weight for weight.
    assert np.array_equal(xinsheng.Classifier.load(tmp_path / "py").predict_proba(texts),
                          from_cli.predict_proba(texts))
    assert trained.manifest["config"]["arch"] == "gru"


def test_copying_the_package_model_works(tmp_path):
    # A bundle directory copied elsewhere loads the same.
    shutil.copytree(DEFAULT, tmp_path / "copy")
    assert xinsheng.Classifier.load(tmp_path / "copy").labels == ["negative", "neutral", "positive"]


def test_the_stub_documents_the_compiled_signatures():
    # _native.pyi is the package's documentation: every function and method in it has the
    # compiled parameters, names and kinds alike. Where the compiled function takes the core's
    # options as **options, the stub spells them out as keyword-only parameters (names and
    # defaults checked against the core in test_options.py).
    import ast
    import inspect

    stub = ast.parse((Path(xinsheng.__file__).parent / "_native.pyi").read_text(encoding="utf-8"))

    def params(node):
        a = node.args
        names = [p.arg for p in a.posonlyargs + a.args if p.arg != "self"]
        return names, [p.arg for p in a.kwonlyargs]

    def compiled(fn):
        ps = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
        return ([p.name for p in ps if p.kind not in (p.KEYWORD_ONLY, p.VAR_KEYWORD)],
                [p.name for p in ps if p.kind is p.KEYWORD_ONLY],
                any(p.kind is p.VAR_KEYWORD for p in ps))

    def documents(node, fn):
        (names, kwonly), (want_names, want_kwonly, options) = params(node), compiled(fn)
        if options:
            # The compiled keyword-only parameters come first, then the core's options.
            return names == want_names and kwonly[:len(want_kwonly)] == want_kwonly
        return (names, kwonly) == (want_names, want_kwonly)

    checked = 0
    for node in stub.body:
        if isinstance(node, ast.FunctionDef):
            assert documents(node, getattr(xinsheng, node.name)), node.name
            checked += 1
        if isinstance(node, ast.ClassDef) and node.name == "Classifier":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not any(
                        isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list):
                    assert documents(item, getattr(xinsheng.Classifier, item.name)), item.name
                    checked += 1
    assert checked >= 9


def test_several_validation_files_choose_the_epoch_by_the_mean_of_their_accuracies(tmp_path):
    # The selection rule of the shipped model: each validation file counts the same.
    other = tmp_path / "other.tsv"
    other.write_text("label\ttext\nnegative\t很好, 非常满意\npositive\t太差了\npositive\t非常满意\n", encoding="utf-8")
    seen = []
    trained = xinsheng.train([TINY], tmp_path / "out", valid=[TINY, other], arch="gru", embed_dim=8, hidden=8,
                             epochs=4, patience=4, min_freq=1, progress=seen.append)
    epochs = [e for e in seen if e["stage"] == "epoch"]
    assert len(epochs) == 4
    for e in epochs:
        assert len(e["valid_accuracies"]) == 2 and e["valid_accuracy"] == e["valid_accuracies"][0]
        assert e["selection_score"] == pytest.approx(sum(e["valid_accuracies"]) / 2)
    best = max(epochs, key=lambda e: e["selection_score"])  # the first epoch with the top score
    assert best["best"], "the kept epoch is flagged best"
    selection = trained.manifest["training"]["selection"]
    assert trained.manifest["training"]["valid"] == [str(TINY), str(other)]
    assert selection["score"] == pytest.approx(best["selection_score"])
    assert selection["accuracy"] == pytest.approx(dict(zip([str(TINY), str(other)], best["valid_accuracies"])))
    assert "mean of the validation files' accuracies" in selection["rule"]
