//! What the command line refuses or ends quietly, before it spends any work (issue 23): options
//! that cannot train, output paths that cannot be written, a reader that closes the pipe, and
//! `--input` together with texts as arguments.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xinsheng"));
    command.args(args).current_dir(repo());
    command
}

fn run(args: &[&str]) -> Output {
    command(args).output().expect("xinsheng runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must fail at once, before reading data or training, and returns its
/// message.
fn refused(args: &[&str]) -> String {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail with exit code 1: {err}");
    assert!(err.starts_with("error: ") && err.lines().count() == 1, "{args:?}: one error line, nothing trained: {err}");
    err
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xinsheng-guards-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn options_that_cannot_train_are_refused_by_train_and_finetune() {
    let dir = scratch("options");
    let out = dir.join("never");
    let out = out.to_str().unwrap();
    let lr = "error: the learning rate (lr) must be a finite number above 0, got";
    let cases: [(&[&str], String); 8] = [
        (&["--lr", "nan"], format!("{lr} NaN")),
        (&["--lr=-1"], format!("{lr} -1")),
        (&["--lr", "0"], format!("{lr} 0")),
        (&["--lr", "inf"], format!("{lr} inf")),
        (&["--epochs", "0"], "error: epochs must be at least 1, got 0".into()),
        (&["--batch-size", "0"], "error: the batch size must be at least 1, got 0".into()),
        (&["--patience", "0"], "error: patience must be at least 1, got 0".into()),
        (&["--dropout", "NaN"], "error: dropout must be in [0, 1), got NaN".into()),
    ];
    for (extra, want) in &cases {
        let mut args = vec!["train", "--data", "tests/fixtures/tiny.csv", "--out", out];
        args.extend_from_slice(extra);
        assert!(refused(&args).starts_with(want.as_str()), "{extra:?}: want {want}");
        // finetune has no --dropout; the rest are the same options, refused in the same words.
        if extra[0] != "--dropout" {
            let mut args = vec!["finetune", "--data", "tests/fixtures/tiny.csv", "--out", out];
            args.extend_from_slice(extra);
            assert!(refused(&args).starts_with(want.as_str()), "finetune {extra:?}: want {want}");
        }
    }
    let err = refused(&[
        "train",
        "--data",
        "tests/fixtures/tiny.csv",
        "--teacher",
        "t.tsv",
        "--distill-weight",
        "nan",
        "--out",
        out,
    ]);
    assert!(err.starts_with("error: the distillation weight must be in [0, 1], got NaN"), "{err}");
    assert!(!Path::new(out).exists(), "nothing written");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_output_path_that_cannot_be_written_is_refused_before_the_first_epoch() {
    let dir = scratch("out");
    let csv = dir.join("a.csv");
    std::fs::write(&csv, "text,label\n好,positive\n").unwrap();
    let csv = csv.to_str().unwrap();
    let train = |out: &str| refused(&["train", "--data", "tests/fixtures/tiny.csv", "--min-freq", "1", "--out", out]);
    let finetune = |out: &str| refused(&["finetune", "--data", "tests/fixtures/tiny.csv", "--out", out]);
    let is_a_file = format!("error: cannot write the model to {csv}: it is a file, not a directory");
    assert!(train(csv).starts_with(&is_a_file), "{}", train(csv));
    assert!(finetune(csv).starts_with(&is_a_file), "{}", finetune(csv));
    // Below a file, and a directory holding other files than a model.
    let below = format!("{csv}/m.bpk");
    assert!(train(&below).ends_with(&format!("{csv} is a file, not a directory\n")), "{}", train(&below));
    let other = dir.to_str().unwrap();
    assert!(finetune(other).contains("the directory holds other files and no model.bpk"), "{}", finetune(other));
    // Not writable (even as root).
    #[cfg(target_os = "linux")]
    assert!(
        train("/proc/xinsheng/model").contains(": /proc does not take new files"),
        "{}",
        train("/proc/xinsheng/model")
    );
    assert_eq!(std::fs::read_to_string(csv).unwrap(), "text,label\n好,positive\n", "the file is untouched");

    // A new directory under missing ones, then the same model directory again, are written.
    let model = dir.join("models/mine");
    let model = model.to_str().unwrap();
    for _ in 0..2 {
        let out = run(&[
            "train",
            "--data",
            "tests/fixtures/tiny.csv",
            "--min-freq",
            "1",
            "--epochs",
            "1",
            "--embed-dim",
            "4",
            "--hidden",
            "4",
            "--out",
            model,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert!(Path::new(model).join("model.bpk").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Many reviews, so that `predict` prints far more than a pipe holds (64 KiB on Linux).
fn many_reviews(dir: &Path) -> PathBuf {
    let file = dir.join("many.txt");
    let line = "物流很快，包装完好，质量也不错，就是价格有点贵，客服回复得很及时，总体满意。";
    std::fs::write(&file, format!("{line}\n").repeat(1500)).unwrap();
    file
}

#[test]
fn a_closed_pipe_ends_quietly_with_status_0() {
    let dir = scratch("pipe");
    let file = many_reviews(&dir);
    // `xinsheng predict --input many.txt | head -1`: read one line, then close the pipe.
    let mut child = command(&["predict", "--input", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"label\":"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no 'error: Broken pipe'");

    // `eval` (tables and --json) into a pipe closed before it writes anything.
    for extra in [&[][..], &["--json"][..]] {
        let mut args = vec!["eval", "--data", "tests/fixtures/tiny.csv"];
        args.extend_from_slice(extra);
        let mut child = command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}: nothing on stderr, no panic");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predict_classifies_the_input_file_then_the_arguments() {
    let dir = scratch("both");
    let file = dir.join("a.csv");
    std::fs::write(&file, "text\n质量很好\n太差了\n").unwrap();
    let file = file.to_str().unwrap();
    let out = run(&["predict", "--input", file, "额外", "", "非常满意"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let texts: Vec<String> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    // Each argument is one review as given, the empty one included.
    assert_eq!(texts, ["质量很好", "太差了", "额外", "", "非常满意"]);
    assert_eq!(stderr(&out), "", "nothing skipped");
    // A missing file is an error, never dropped for the arguments.
    let missing = dir.join("missing.csv");
    let out = run(&["predict", "--input", missing.to_str().unwrap(), "额外"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).starts_with(&format!("error: {}", missing.display())), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
