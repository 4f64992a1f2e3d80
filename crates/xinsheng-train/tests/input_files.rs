//! Files as users have them, read by the `xinsheng` binary through the core's one reader (the
//! page reads the same fixtures in tests/browser/files.test.mjs): a file mixing UTF-8 and GBK
//! lines, a CSV renamed `.xlsx`, doccano exports, and the page's CSV export with its formula
//! guard (issue 23).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixture(name: &str) -> String {
    repo().join("tests/fixtures/files").join(name).to_str().unwrap().to_string()
}

fn xinsheng(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xinsheng")).args(args).current_dir(repo()).output().expect("xinsheng runs")
}

fn texts(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .collect()
}

/// Runs a command that must fail cleanly, writing nothing to stdout; returns its message.
fn failure(args: &[&str]) -> String {
    let out = xinsheng(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {err}");
    assert!(out.stdout.is_empty(), "{args:?} wrote {}", String::from_utf8_lossy(&out.stdout));
    assert!(err.starts_with("error: ") && !err.contains("panicked"), "{err}");
    err
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xinsheng-input-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_file_mixing_utf8_and_gbk_lines_is_an_error_naming_the_line_not_mojibake() {
    let file = fixture("mixed-encodings.txt");
    let err = failure(&["predict", "--input", &file]);
    assert!(err.contains("mixed-encodings.txt:3: this line is not UTF-8, but line 1 is UTF-8 text"), "{err}");
    assert!(err.contains("--encoding gb18030"), "{err}");
    assert!(!err.contains("浠锋牸鍜岄厤缃"), "{err}");
    let err = failure(&["predict", "--encoding", "utf-8", "--input", &file]);
    assert!(err.contains("mixed-encodings.txt:3: not valid utf-8 text"), "{err}");
    // Whole GBK files still read as GB18030.
    assert_eq!(texts(&xinsheng(&["predict", "--input", &fixture("gb18030.csv")])).len(), 4);
}

#[test]
fn unknown_extensions_are_refused_by_one_rule_and_format_names_the_format() {
    let file = fixture("renamed-csv.xlsx");
    for command in [&["predict", "--input"][..], &["eval", "--data"][..]] {
        let err = failure(&[command, &[file.as_str()]].concat());
        assert!(err.contains("renamed-csv.xlsx: unknown file format '.xlsx'"), "{err}");
        assert!(err.contains("saved as CSV") && err.contains("--format"), "{err}");
    }
    let out = xinsheng(&["predict", "--format", "csv", "--input", &file]);
    assert_eq!(texts(&out), ["质量很好，物流也快", "太差了，不推荐"], "the header is not a review");
    let out = xinsheng(&["eval", "--format", "csv", "--data", &file, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A name without an extension is one review per line, as standard input is.
    let dir = tmp("names");
    let plain = dir.join("reviews");
    std::fs::write(&plain, "好评\n差评\n").unwrap();
    assert_eq!(texts(&xinsheng(&["predict", "--input", plain.to_str().unwrap()])), ["好评", "差评"]);
    let out = xinsheng(&["predict", "--format", "xlsx", "--input", plain.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown format 'xlsx' (expected txt, tsv, csv, jsonl)"), "{err}");
}

#[test]
fn doccano_rows_without_a_label_or_with_another_text_key_say_what_they_lack() {
    let err = failure(&["eval", "--data", &fixture("doccano-unlabelled.jsonl")]);
    assert!(err.contains("doccano-unlabelled.jsonl:2: missing label: this review has no label"), "{err}");
    assert!(!err.contains("needs a label column"), "{err}");
    let file = fixture("doccano-data-key.jsonl");
    let err = failure(&["predict", "--input", &file]);
    assert!(err.contains("doccano-data-key.jsonl:1: no \"text\" key"), "{err}");
    assert!(err.contains("this line has the keys \"data\", \"id\", \"label\""), "{err}");
    assert!(err.contains("--text-column"), "{err}");
    let out = xinsheng(&["predict", "--text-column", "data", "--input", &file]);
    assert_eq!(texts(&out), ["质量很好，物流也快", "太差了，不推荐"]);
}

/// The page's predictions export guards formula cells (tests/fixtures/files/formulas.json, the
/// table the page's export and the core's `csv_field` are held to); the CLI reads such a file
/// back as the original texts.
#[test]
fn a_csv_with_guarded_formula_cells_reads_back_as_the_original_texts() {
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("formulas.json")).unwrap()).unwrap();
    let cases = table["cases"].as_array().unwrap();
    let mut csv = String::from("\u{FEFF}text,label,score\r\n");
    for case in cases {
        csv += &format!("{},\"'-1\",0.5\r\n", case["cell"].as_str().unwrap());
    }
    let file = tmp("formulas").join("xinsheng-predictions.csv");
    std::fs::write(&file, csv).unwrap();
    let want: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(texts(&xinsheng(&["predict", "--input", file.to_str().unwrap()])), want);
}
