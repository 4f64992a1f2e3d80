"""python -m xinsheng.ray_predict on a real local Ray cluster (the module starts its own, with the
machine's CPUs), against the CLI on the same texts."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import xinsheng
from conftest import ROOT, cli_predict, review_texts
from xinsheng.ray_predict import classify_frame, output_columns

ROWS, FILES = 20_000, 8


def test_bad_rows_get_an_error_and_the_rest_are_classified():
    clf = xinsheng.Classifier.load()
    frame = pd.DataFrame({"id": range(6), "text": ["很好", None, b"\xff\xfe bad", 42, b"\xe5\xa5\xbd", float("nan")]})
    out = classify_frame(clf, frame, "text")
    assert list(out.columns) == ["id", "text"] + output_columns(clf.labels)
    assert out["error"].isna().tolist() == [True, False, False, False, True, False]
    assert "missing" in out["error"][1] and "UTF-8" in out["error"][2] and "int" in out["error"][3]
    assert "missing" in out["error"][5]
    expected = clf.predict_proba(["很好", "好"])
    assert np.array_equal(out.loc[[0, 4], ["p_negative", "p_neutral", "p_positive"]].to_numpy(np.float32), expected)
    assert out["label"].isna().tolist() == [False, True, True, True, False, True]
    # pandas' own missing values too.
    assert classify_frame(clf, pd.DataFrame({"text": pd.array(["好", pd.NA], dtype="string")}), "text")["error"][1] \
        == "text is missing (null)"
    with pytest.raises(ValueError, match="no column 'review'"):
        classify_frame(clf, frame, "review")


def write_archive(folder):
    """ROWS reviews with an id and an extra column in FILES Parquet files; the last file has two
    rows whose text is null (a corrupt export)."""
    texts = review_texts(1500)
    frame = pd.DataFrame({
        "id": np.arange(ROWS),
        "text": [texts[i % len(texts)] for i in range(ROWS)],
        "stars": np.arange(ROWS) % 5 + 1,
    })
    frame["text"] = frame["text"].astype(object)
    bad = [ROWS - 7, ROWS - 3]
    frame.loc[bad, "text"] = None
    folder.mkdir()
    size = ROWS // FILES
    for i in range(FILES):
        part = frame.iloc[i * size:(i + 1) * size]
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), folder / f"part-{i}.parquet")
    return frame, bad


def test_ray_predict_classifies_every_row_once_like_the_cli(tmp_path):
    frame, bad = write_archive(tmp_path / "reviews")
    out_dir = tmp_path / "out"
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "xinsheng.ray_predict", "--input", str(tmp_path / "reviews" / "*.parquet"),
         "--output", str(out_dir), "--num-actors", "2", "--batch-size", "500"],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"classified {ROWS - 2} rows, 2 with errors" in done.stderr

    out = pq.read_table(out_dir).to_pandas()
    # Every row exactly once, with its original columns.
    assert len(out) == ROWS and sorted(out["id"]) == list(range(ROWS))
    out = out.sort_values("id").reset_index(drop=True)
    assert out["stars"].tolist() == frame["stars"].tolist()
    assert out["text"].tolist()[:5] == frame["text"].tolist()[:5]
    # The corrupt rows carry the reason; the others none.
    errors = out["error"].notna()
    assert sorted(out.index[errors]) == bad
    assert out.loc[bad, "label"].isna().all()

    # The CLI's numbers for the same texts.
    good = out[~errors]
    unique = sorted(set(good["text"]))
    native = {t: n for t, n in zip(unique, cli_predict(unique))}
    expected = np.array([[native[t]["probs"][label] for label in ("negative", "neutral", "positive")] for t in good["text"]])
    assert np.abs(good[["p_negative", "p_neutral", "p_positive"]].to_numpy() - expected).max() <= 1e-5
    assert (good["label"].to_numpy() == np.array([native[t]["label"] for t in good["text"]])).all()
    assert np.allclose(good["score"], good[["p_negative", "p_neutral", "p_positive"]].max(axis=1))


def test_ray_predict_refuses_what_would_lose_or_mix_results(tmp_path):
    frame, _ = write_archive(tmp_path / "reviews")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.parquet").write_bytes(b"x")
    run = lambda *args: subprocess.run([sys.executable, "-m", "xinsheng.ray_predict", *args],
                                       capture_output=True, text=True, timeout=300)
    done = run("--input", str(tmp_path / "nothing-*.parquet"), "--output", str(tmp_path / "o1"))
    assert done.returncode == 2 and "no file matches" in done.stderr
    done = run("--input", str(tmp_path / "reviews"), "--output", str(tmp_path / "used"))
    assert done.returncode == 2 and "is not empty" in done.stderr
