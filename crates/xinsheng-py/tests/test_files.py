"""Files follow the core's one rule for names, as in the CLI and on the page (issue 23)."""

import pytest

import xinsheng
from conftest import ROOT

TINY = ROOT / "tests" / "fixtures" / "tiny.csv"


def test_an_unknown_extension_is_refused_and_format_names_the_format(tmp_path):
    renamed = tmp_path / "tiny.xlsx"  # a CSV under a spreadsheet's name
    renamed.write_bytes(TINY.read_bytes())
    with pytest.raises(ValueError, match=r"tiny\.xlsx: unknown file format '\.xlsx'.*format= in Python"):
        xinsheng.train(renamed)
    with pytest.raises(ValueError, match=r"unknown format 'xlsx' \(expected txt, tsv, csv, jsonl\)"):
        xinsheng.train(renamed, format="xlsx")
    trained = xinsheng.train(renamed, format="csv", arch="gru", embed_dim=8, hidden=8, epochs=1, min_freq=1)
    assert trained.labels == ["negative", "positive"]
