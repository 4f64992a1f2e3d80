//! The `xinsheng` binary as a user runs it: the shipped model's quality, predictions on odd
//! input, and clear errors (never a panic) on bad files and bad bundles.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn xinsheng(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xinsheng")).args(args).current_dir(repo()).output().expect("xinsheng runs")
}

/// `key` of every JSON line `predict` wrote, as strings.
fn field_of_each_line(out: &Output, key: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[key].as_str().unwrap().to_string())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must fail cleanly and returns its message.
fn failure(args: &[&str]) -> String {
    let out = xinsheng(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail with exit code 1: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xinsheng-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn shipped_model_meets_the_quality_bar_on_the_test_split() {
    let out = xinsheng(&["eval", "--model", "models/default", "--data", "data/test.tsv", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The test split is binary and the model knows three labels: it is held to P(positive)
    // against P(negative), and to how many polar reviews it calls neutral.
    let polar = &m["data_labels"];
    assert_eq!(polar["labels"], serde_json::json!(["negative", "positive"]), "{m}");
    let accuracy = polar["metrics"]["accuracy"].as_f64().unwrap();
    let macro_f1 = polar["metrics"]["macro_f1"].as_f64().unwrap();
    // The shipped model measures 0.8526 / 0.8523 and calls 0.78 % neutral; the floors leave room
    // for floating-point differences between builds. (The goal, 0.865, is not reached:
    // see the model card.)
    assert!(accuracy >= 0.845, "polar test accuracy {accuracy}");
    assert!(macro_f1 >= 0.845, "polar test macro-F1 {macro_f1}");
    let neutral = polar["predicted_outside"].as_f64().unwrap();
    assert!(neutral <= 0.05, "{:.1} % of polar test reviews called neutral", 100.0 * neutral);
    for label in ["negative", "positive"] {
        let c = &polar["metrics"]["per_class"][label];
        assert!(c["precision"].as_f64().unwrap() > 0.8 && c["recall"].as_f64().unwrap() > 0.8, "{label}: {c}");
    }
    let matrix = m["confusion"]["matrix"].as_array().unwrap();
    let total: u64 = matrix.iter().flat_map(|r| r.as_array().unwrap()).map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, 1662, "every test example counted once");
}

#[test]
fn predict_gives_a_valid_answer_for_any_text() {
    let long = "这个产品很好。".repeat(15_000); // 105,000 characters
    let texts: [&str; 7] =
        ["", "   \t ", "😀😀👍", "This product is great", "這本書寫得非常好，推薦大家", &long, "太差了，再也不买"];
    // Through a file: the long text is over the operating system's limit for one argument.
    let dir = tmp("odd");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("odd.txt");
    std::fs::write(&file, texts.join("\n")).unwrap();
    let out = xinsheng(&["predict", "--input", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Blank reviews are skipped and counted, as every text source does; every other text gets an answer.
    assert!(stderr(&out).contains("skipped 2 blank reviews"), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let texts: Vec<&str> = texts.into_iter().filter(|t| !t.trim().is_empty()).collect();
    assert_eq!(lines.len(), texts.len());
    for (line, text) in lines.iter().zip(&texts) {
        assert_eq!(line["text"], *text);
        let probs = line["probs"].as_object().unwrap();
        let sum: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{line}");
        assert_eq!(probs[line["label"].as_str().unwrap()], line["score"]);
    }
    assert_eq!(lines[4]["label"], "negative");
}

#[test]
fn predict_reads_standard_input_and_files() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xinsheng"))
        .args(["predict"])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all("非常满意，质量很好\n太差了\n".as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let labels = field_of_each_line(&out, "label");
    assert_eq!(labels, ["positive", "negative"]);

    let dir = tmp("input");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("reviews.txt");
    std::fs::write(&file, "\u{FEFF}好评\r\n\r\n   \n差评\n").unwrap();
    let out = xinsheng(&["predict", "--input", file.to_str().unwrap()]);
    let texts = field_of_each_line(&out, "text");
    assert_eq!(texts, ["好评", "差评"], "BOM dropped, CRLF handled, blank lines skipped");
    assert!(stderr(&out).contains("skipped 2 blank reviews"), "{}", stderr(&out));
}

#[test]
fn predict_answers_an_empty_argument_and_notes_input_without_a_review() {
    let out = xinsheng(&["predict", ""]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(field_of_each_line(&out, "text"), [""], "an explicit empty review gets an answer");
    for (input, note) in [
        ("", "note: no review in standard input: nothing to classify\n"),
        ("\n  \n", "note: no review in standard input: nothing to classify\n"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xinsheng"))
            .args(["predict"])
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{input:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{input:?}");
        assert_eq!(stderr(&out), note, "{input:?}");
    }
    // A file the same: the note names it, and the arguments are still answered.
    let dir = tmp("no-review");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("empty.txt");
    std::fs::write(&file, "").unwrap();
    let out = xinsheng(&["predict", "--input", file.to_str().unwrap(), "好"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), format!("note: no review in {}: nothing to classify\n", file.display()));
    assert_eq!(field_of_each_line(&out, "text"), ["好"]);
    // One blank line skipped among reviews: the singular.
    std::fs::write(&file, "好\n\n差\n").unwrap();
    let out = xinsheng(&["predict", "--input", file.to_str().unwrap()]);
    assert_eq!(stderr(&out), "skipped 1 blank review\n");
}

#[test]
fn bad_data_files_name_the_file_and_line() {
    let cases = [
        ("missing-tab.tsv", "tests/fixtures/missing-tab.tsv:3: expected 2 tab-separated columns"),
        ("missing-label.tsv", "tests/fixtures/missing-label.tsv:3: missing label"),
        ("invalid-utf8.tsv", "tests/fixtures/invalid-utf8.tsv:3: this is neither UTF-8 nor GB18030"),
        ("empty.tsv", "tests/fixtures/empty.tsv: the file is empty"),
        ("malformed.jsonl", "tests/fixtures/malformed.jsonl:2: malformed JSON line"),
        ("unknown-label.tsv", "tests/fixtures/unknown-label.tsv:3: unknown label '中立'"),
        ("nope.tsv", "tests/fixtures/nope.tsv: No such file"),
        ("tiny.xlsx", "unknown file format"),
    ];
    for (file, expected) in cases {
        let err = failure(&["eval", "--data", &format!("tests/fixtures/{file}")]);
        assert!(err.contains(expected), "{file}: {err}");
    }
}

#[test]
fn rows_with_empty_text_are_skipped_with_a_warning_and_long_lines_work() {
    let out = xinsheng(&["eval", "--data", "tests/fixtures/empty-text.tsv", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("skipped 1 rows with empty text"), "{}", stderr(&out));
    let out = xinsheng(&["eval", "--data", "tests/fixtures/long-line.tsv", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn missing_and_corrupt_bundles_are_explained() {
    let err = failure(&["predict", "--model", "/nonexistent/model", "好"]);
    assert!(err.contains("/nonexistent/model/model.bpk") || err.contains("/nonexistent/model"), "{err}");
    assert!(err.contains("not found"), "{err}");

    let dir = tmp("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read(repo().join("models/default/model.bpk")).unwrap();
    for (name, bytes) in
        [("truncated.bpk", good[..good.len() * 2 / 3].to_vec()), ("garbage.bpk", b"not a model at all".to_vec())]
    {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = failure(&["predict", "--model", path.to_str().unwrap(), "好"]);
        assert!(err.contains(name) && (err.contains("truncated") || err.contains("corrupt")), "{err}");
    }
}

#[test]
fn train_then_finetune_with_a_new_label_end_to_end() {
    let dir = tmp("train");
    let base = dir.join("base");
    let out = xinsheng(&[
        "train",
        "--data",
        "tests/fixtures/tiny.csv",
        "--arch",
        "gru",
        "--embed-dim",
        "8",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--min-freq",
        "1",
        "--out",
        base.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("epoch  2"), "progress is shown: {}", stderr(&out));

    let tuned = dir.join("tuned.bpk");
    let finetune = |extra: &[&str]| {
        let mut args =
            vec!["finetune", "--model", base.to_str().unwrap(), "--epochs", "2", "--out", tuned.to_str().unwrap()];
        args.extend_from_slice(extra);
        xinsheng(&args)
    };
    // A new label is one flag away, never an accident.
    let err = stderr(&finetune(&["--data", "tests/fixtures/three-labels.jsonl"]));
    assert!(
        err.contains(
            "labels '正面', '负面', '中立' are new to the model (it knows negative, positive): pass --add-labels"
        ),
        "{err}"
    );
    // Case variants of known labels are refused (the model would grow from 2 to 4 classes).
    let err = stderr(&finetune(&["--data", "tests/fixtures/case-labels.jsonl", "--add-labels"]));
    assert!(err.contains("case-labels.jsonl:1: label 'Positive' differs from the model's label 'positive'"), "{err}");
    // Mapped to the model's names, only 中立 is new.
    let out = finetune(&[
        "--data",
        "tests/fixtures/three-labels.jsonl",
        "--label-map",
        "正面=positive,负面=negative,中立=中立",
        "--add-labels",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("added labels: 中立 (the model grew from 2 to 3 classes)"), "{}", stderr(&out));
    let out = xinsheng(&["predict", "--model", tuned.to_str().unwrap(), "一般"]);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["probs"].as_object().unwrap().len(), 3, "positive, negative and 中立");
}

#[test]
fn columns_and_numeric_labels_of_public_sets_read_with_options() {
    // review/sentiment columns are found by name; 1/0 become the model's labels through the map.
    let out = xinsheng(&[
        "eval",
        "--data",
        "tests/fixtures/public-set.csv",
        "--label-map",
        "1=positive,0=negative",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(metrics["accuracy"], 1.0, "{metrics}");
    let err = failure(&["eval", "--data", "tests/fixtures/public-set.csv"]);
    assert!(err.contains("public-set.csv:2: unknown label '1'"), "{err}");
    let err = failure(&["eval", "--data", "tests/fixtures/public-set.csv", "--text-column", "body"]);
    assert!(err.contains("public-set.csv:1: the header row has no text column 'body'"), "{err}");
    let out = xinsheng(&["predict", "--input", "tests/fixtures/public-set.csv", "--text-column", "review"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3, "{}", stderr(&out));
}

#[test]
fn bad_options_are_refused() {
    let err = failure(&["train", "--data", "tests/fixtures/tiny.csv", "--hidden", "0", "--out", "/tmp/never"]);
    assert!(err.contains("hidden size must be at least 1"), "{err}");
    let err = failure(&["train", "--data", "tests/fixtures/tiny.csv", "--temperature", "2", "--out", "/tmp/never"]);
    assert!(err.contains("give a teacher file (--teacher) too"), "{err}");
    let err = failure(&["train", "--data", "tests/fixtures/tiny.csv", "--teacher", "t.txt", "--out", "/tmp/never"]);
    assert!(err.contains("teacher files are .tsv, .csv or .jsonl"), "{err}");
    let out = xinsheng(&["train", "--data", "x.tsv", "--arch", "transformer", "--out", "y"]);
    assert_eq!(out.status.code(), Some(2), "clap rejects unknown values");
}

#[test]
fn predict_explains_tokens_on_request() {
    let text = "快递很慢，客服态度很差";
    let plain: serde_json::Value = serde_json::from_slice(&xinsheng(&["predict", text]).stdout).unwrap();
    let out = xinsheng(&["predict", "--explain", text]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The same prediction as without --explain, up to rounding: explain scores the text in a
    // batch with its occluded variants, and batch composition moves the last digits.
    assert_eq!(line["label"], plain["label"]);
    for label in ["negative", "positive"] {
        let (a, b) = (line["probs"][label].as_f64().unwrap(), plain["probs"][label].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5, "{label}: {a} with --explain, {b} without");
    }
    let tokens = line["tokens"].as_array().unwrap();
    let joined: String = tokens.iter().map(|t| t["token"].as_str().unwrap()).collect();
    assert_eq!(joined, "快递很慢,客服态度很差", "every token, in order (full-width comma normalised)");
    assert!(tokens.iter().all(|t| t["weight"].as_f64().unwrap().abs() <= 1.0));
    assert_eq!((&tokens[4]["token"], &tokens[4]["start"], &tokens[4]["end"]), (&",".into(), &4.into(), &5.into()));
}

#[test]
fn explained_tokens_point_at_the_text_as_written() {
    let text = "iPhone很好用ＡＢＣ①，物流ＯＫ！";
    let out = xinsheng(&["predict", "--explain", text]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let chars: Vec<char> = text.chars().collect();
    let read: Vec<(String, String)> = line["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let (start, end) = (t["start"].as_u64().unwrap() as usize, t["end"].as_u64().unwrap() as usize);
            (t["token"].as_str().unwrap().to_string(), chars[start..end].iter().collect())
        })
        .collect();
    let pairs = [("iphone", "iPhone"), ("很", "很"), ("好", "好"), ("用", "用"), ("abc1", "ＡＢＣ①"), (",", "，")];
    let expected: Vec<(String, String)> = pairs
        .iter()
        .chain(&[("物", "物"), ("流", "流"), ("ok", "ＯＫ"), ("!", "！")])
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(read, expected);
}

/// The team's phenomena set: `(label, kind, text)` rows of tests/quality/phenomena.tsv.
fn phenomena() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(repo().join("tests/quality/phenomena.tsv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("label\tkind\tdomain\ttext"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "{l}");
            (f[0].to_string(), f[1].to_string(), f[3].to_string())
        })
        .collect()
}

#[test]
fn shipped_model_keeps_its_accuracy_on_every_phenomenon_kind() {
    let rows = phenomena();
    let dir = tmp("phenomena");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("texts.txt");
    std::fs::write(&file, rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>().join("\n")).unwrap();
    let out = xinsheng(&["predict", "--input", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let predicted: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(predicted.len(), rows.len());
    let mut per_kind: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for ((label, kind, _), p) in rows.iter().zip(&predicted) {
        let entry = per_kind.entry(kind).or_default();
        entry.0 += usize::from(p["label"] == label.as_str());
        entry.1 += 1;
    }
    // The figures the shipped model ships with (its model card has the same table).
    let shipped = std::fs::read_to_string(repo().join("tests/quality/shipped.tsv")).unwrap();
    let mut report = String::new();
    for line in shipped.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let (kind, floor): (&str, usize) = (f[0], f[1].parse().unwrap());
        let (correct, total) = per_kind.get(kind).copied().unwrap_or_default();
        report += &format!("{kind}\t{correct}\t{total}\t{:.3}\n", correct as f64 / total.max(1) as f64);
        assert!(correct >= floor, "{kind}: {correct}/{total} right, the shipped model gets {floor}");
    }
    eprintln!("kind\tcorrect\ttotal\taccuracy\n{report}");
    assert_eq!(shipped.lines().count() - 1, per_kind.len(), "every kind has a shipped figure");
}

#[test]
fn negation_contrast_and_late_verdicts_get_the_right_label() {
    // The three faults reported in the quality issue, each a row of the phenomena set.
    let late = phenomena()
        .into_iter()
        .find(|r| r.1 == "late_verdict" && r.2.ends_with("总之非常失望，质量太差，不会再买了。"));
    let late = late.expect("the long review with a late verdict is in the phenomena set").2;
    assert!(late.chars().count() > 1000, "{} characters", late.chars().count());
    let out = xinsheng(&[
        "predict",
        "这款耳机音质不差，价格也不贵，值得买。",
        "外观很漂亮，做工也精致，但是用了三天就坏了，非常失望。",
        &late,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let labels = field_of_each_line(&out, "label");
    assert_eq!(labels, ["positive", "negative", "negative"]);
}

/// The files of tests/fixtures/files, read as the page reads them (tests/browser/workbench.test.mjs
/// compares the page's reading with the same expected.json).
#[test]
fn bom_crlf_quoted_gb18030_and_jsonl_files_read_as_expected() {
    let dir = repo().join("tests/fixtures/files");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    for (file, want) in expected.as_object().unwrap() {
        let path = dir.join(file);
        let path = path.to_str().unwrap();
        let want_texts: Vec<&str> =
            want["records"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap()).collect();
        let out = xinsheng(&["predict", "--input", path]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let texts = field_of_each_line(&out, "text");
        assert_eq!(texts, want_texts, "{file}: predict --input");
        let out = xinsheng(&["eval", "--data", path, "--json"]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let metrics: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let support: u64 =
            metrics["per_class"].as_object().unwrap().values().map(|c| c["support"].as_u64().unwrap()).sum();
        assert_eq!(support as usize, want_texts.len(), "{file}: eval reads every labelled row");
    }
    // Forcing the wrong encoding is an error naming the line, never replacement characters.
    let gb = dir.join("gb18030.csv");
    let err = failure(&["predict", "--encoding", "utf-8", "--input", gb.to_str().unwrap()]);
    assert!(err.contains("gb18030.csv:2: not valid utf-8 text"), "{err}");
    let out = xinsheng(&["eval", "--encoding", "latin1", "--data", gb.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("unknown encoding 'latin1'"), "{}", stderr(&out));
}
