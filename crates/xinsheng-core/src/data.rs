//! Labelled examples from TSV, CSV or JSONL files (columns/keys `label` and `text`), read
//! through [`crate::input`] like every other text source. Parsing works on bytes so the browser
//! can reuse it for dropped files.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::input::{Encoding, Format, ReadOptions};
use crate::input::{parse_records, parse_table};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub label: String,
    pub text: String,
}

/// Examples read from one file, plus how many rows were skipped because their text was empty.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub examples: Vec<Example>,
    /// The 1-based line each example came from, for error messages.
    pub lines: Vec<usize>,
    pub skipped_empty: usize,
}

impl Dataset {
    /// Fails on the first example whose label is not in `labels`, naming its line.
    pub fn check_labels(&self, name: &str, labels: &[String]) -> Result<()> {
        for (e, &line) in self.examples.iter().zip(&self.lines) {
            if !labels.contains(&e.label) {
                return Err(Error::data(
                    name,
                    Some(line),
                    format!("unknown label '{}' (the model knows {})", e.label, labels.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Labels in order of first appearance.
    pub fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = Vec::new();
        for e in &self.examples {
            if !labels.contains(&e.label) {
                labels.push(e.label.clone());
            }
        }
        labels
    }
}

/// Reads a data file from disk; the format comes from its extension, the encoding is detected.
pub fn read_examples(path: &str) -> Result<Dataset> {
    read_examples_with(path, &ReadOptions::default())
}

/// [`read_examples`] with options: encoding, columns, label map.
pub fn read_examples_with(path: &str, options: &ReadOptions) -> Result<Dataset> {
    options.format_of(path)?; // an unknown extension is reported before looking for the file
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_string(), source })?;
    parse_examples_with(path, &bytes, options)
}

/// Parses labelled examples (encoding and columns detected); `name` is only used in error messages.
pub fn parse_examples(name: &str, bytes: &[u8], format: Format) -> Result<Dataset> {
    parse_examples_with(name, bytes, &ReadOptions { format: Some(format), ..ReadOptions::default() })
}

/// Parses labelled examples: [`parse_records`] with every non-blank row labelled.
pub fn parse_examples_with(name: &str, bytes: &[u8], options: &ReadOptions) -> Result<Dataset> {
    if options.format_of(name)? == Format::Txt {
        return Err(Error::data(name, None, "labelled data needs a .tsv, .csv or .jsonl file with 'label' and 'text'"));
    }
    let records = parse_records(name, bytes, options)?;
    if !records.labelled {
        return Err(Error::data(
            name,
            Some(1),
            "labelled data needs a label column (one of label, sentiment, …; or name it with --label-column, or the page's \
             Label column field) beside the text",
        ));
    }
    let mut dataset = Dataset { skipped_empty: records.skipped_blank, ..Dataset::default() };
    for record in records.records {
        let Some(label) = record.label else {
            return Err(Error::data(
                name,
                Some(record.line),
                "missing label: this review has no label (an empty label field, or null or [] in JSON, as doccano \
                 writes a review nobody labelled): label it or remove the row",
            ));
        };
        dataset.examples.push(Example { label, text: record.text });
        dataset.lines.push(record.line);
    }
    Ok(dataset)
}

/// The form two labels are compared in to catch near-duplicates: normalised like text
/// (NFKC, invisible characters removed), trimmed, lower-cased.
pub fn label_key(label: &str) -> String {
    crate::tokenizer::normalize(label).trim().to_lowercase()
}

/// The labels that `known` lacks among `labels` (each with the 1-based line, or example number,
/// it comes from), in order of first appearance. A label that differs from a known one (or from
/// an earlier new one) only by case, width or surrounding space — `Positive` beside `positive`,
/// `ｐｏｓｉｔｉｖｅ` — is an error naming both and the line, since adding it would silently split
/// one class in two.
pub fn new_labels<'a>(
    name: &str,
    known: &[String],
    labels: impl IntoIterator<Item = (&'a str, usize)>,
) -> Result<Vec<String>> {
    let mut seen: Vec<String> = known.to_vec();
    let mut added = Vec::new();
    for (label, line) in labels {
        if seen.iter().any(|k| k == label) {
            continue;
        }
        if let Some(twin) = seen.iter().find(|k| label_key(k) == label_key(label)) {
            let whose = if known.contains(twin) { "the model's label" } else { "the label" };
            return Err(Error::data(
                name,
                Some(line),
                format!(
                    "label '{}' differs from {whose} '{twin}' only by case, width or spaces: write '{twin}' (or map \
                     it: {}={twin})",
                    label, label
                ),
            ));
        }
        seen.push(label.to_string());
        added.push(label.to_string());
    }
    Ok(added)
}

/// One row of a teacher file: a text, its gold label if the file gives one, and the
/// teacher's probability of each label.
#[derive(Clone, Debug, PartialEq)]
pub struct TeacherRow {
    pub text: String,
    pub label: Option<String>,
    /// In the order of the `labels` the file was read for; sums to 1.
    pub probs: Vec<f32>,
}

/// Reads a teacher file (see [`parse_teacher`]) from disk.
pub fn read_teacher(path: &str, labels: &[String]) -> Result<Vec<TeacherRow>> {
    let options = ReadOptions::default();
    teacher_format(path, &options)?; // a wrong kind of file is reported before looking for it
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_string(), source })?;
    parse_teacher(path, &bytes, &options, labels)
}

/// Refuses a teacher file that is not a table (plain text has no probability columns).
fn teacher_format(name: &str, options: &ReadOptions) -> Result<()> {
    if options.format_of(name)? == Format::Txt {
        return Err(Error::data(
            name,
            None,
            "teacher files are .tsv, .csv or .jsonl with a text column and p_LABEL columns",
        ));
    }
    Ok(())
}

/// Parses a teacher file, read like every other table ([`crate::input::parse_table`]: .tsv,
/// .csv or .jsonl, any supported encoding, the text column by its usual names, blank texts
/// skipped): one `p_LABEL` column (JSONL: key) per label of `labels` (for two labels one is
/// enough, the other being its complement, as in `p_positive`), optionally a label column (kept
/// in [`TeacherRow::label`]; training takes gold labels from its `--data` files only) and other
/// columns (ignored). Probability column names match regardless of ASCII case. Probabilities
/// must lie in [0, 1] and sum to 1 within 0.01 (they are then normalised). Errors name the
/// file and line.
pub fn parse_teacher(name: &str, bytes: &[u8], options: &ReadOptions, labels: &[String]) -> Result<Vec<TeacherRow>> {
    teacher_format(name, options)?;
    let table = parse_table(name, bytes, options)?;
    let wanted: Vec<String> = labels.iter().map(|l| format!("p_{l}")).collect();
    let mut rows = Vec::with_capacity(table.records.len());
    for record in &table.records {
        let find = |col: &str| record.columns.iter().find(|(h, _)| h.trim().eq_ignore_ascii_case(col)).map(|(_, v)| v);
        let fields: Vec<Option<&String>> = wanted.iter().map(|w| find(w)).collect();
        let missing = fields.iter().filter(|f| f.is_none()).count();
        if missing > usize::from(labels.len() == 2) {
            let either = if labels.len() == 2 { "one of " } else { "" };
            let found: Vec<&str> = record.columns.iter().map(|(h, _)| h.as_str()).collect();
            let line = if table.format == Format::Jsonl { record.line } else { 1 };
            return Err(Error::data(
                name,
                Some(line),
                format!(
                    "the header needs {either}the teacher's probability columns {} (found {})",
                    wanted.join(", "),
                    found.join(", ")
                ),
            ));
        }
        let mut probs = Vec::with_capacity(labels.len());
        for (column, field) in wanted.iter().zip(&fields) {
            let Some(field) = field else {
                probs.push(f32::NAN); // the complement, filled in below
                continue;
            };
            let field = field.trim();
            let p: f32 = field.parse().ok().filter(|p: &f32| (0.0..=1.0).contains(p)).ok_or_else(|| {
                Error::data(
                    name,
                    Some(record.line),
                    format!("{column} must be a probability in [0, 1], found '{field}'"),
                )
            })?;
            probs.push(p);
        }
        if let Some(slot) = probs.iter().position(|p| p.is_nan()) {
            probs[slot] = 1.0 - probs[1 - slot];
        }
        let sum: f32 = probs.iter().sum();
        if (sum - 1.0).abs() > 0.01 {
            return Err(Error::data(name, Some(record.line), format!("the probabilities sum to {sum}, not 1")));
        }
        probs.iter_mut().for_each(|p| *p /= sum);
        rows.push(TeacherRow { text: record.text.clone(), label: record.label.clone(), probs });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &[u8], format: Format) -> String {
        parse_examples("f", bytes, format).unwrap_err().to_string()
    }

    #[test]
    fn reads_all_three_formats() {
        let tsv = parse_examples("f", "label\ttext\n正面\t很好\n负面\t太差了\n".as_bytes(), Format::Tsv).unwrap();
        let csv = parse_examples("f", "text,label\n\"很好, 真的\",正面\n".as_bytes(), Format::Csv).unwrap();
        let jsonl = parse_examples("f", "{\"label\":\"中立\",\"text\":\"一般\"}\n".as_bytes(), Format::Jsonl).unwrap();
        assert_eq!(tsv.examples.len(), 2);
        assert_eq!(tsv.labels(), ["正面", "负面"]);
        assert_eq!(csv.examples[0], Example { label: "正面".into(), text: "很好, 真的".into() });
        assert_eq!(jsonl.examples[0].label, "中立");
    }

    #[test]
    fn bad_rows_name_their_line() {
        assert_eq!(
            err(b"label\ttext\npositive\tok\nno tab here\n", Format::Tsv),
            "f:3: expected 2 tab-separated columns (label<TAB>text), found 1"
        );
        assert!(
            err(b"label\ttext\n\tno label\n", Format::Tsv).starts_with("f:2: missing label: this review has no label")
        );
        assert!(
            err(b"label\ttext\npositive\t\xff\xfe\n", Format::Tsv)
                .starts_with("f:2: this is neither UTF-8 nor GB18030")
        );
        assert!(err(b"{\"label\": \n", Format::Jsonl).starts_with("f:1: malformed JSON line"));
        assert!(err(b"{\"label\": 1}\n", Format::Jsonl).starts_with("f:1: no \"text\" key"));
        assert!(err(b"", Format::Tsv).contains("empty"));
        assert!(err(b"label,text\na,b,c\n", Format::Csv).contains("malformed CSV"));
        assert!(Format::from_name("x.xlsx").is_err());
    }

    #[test]
    fn teacher_files_give_probabilities_in_label_order() {
        let labels = vec!["negative".to_string(), "positive".to_string()];
        let tsv = "label\tp_positive\ttext\npositive\t0.9\t很好\n\t0.25\t一般\n";
        let rows = parse_teacher("t.tsv", tsv.as_bytes(), &ReadOptions::default(), &labels).unwrap();
        assert_eq!((rows[0].text.as_str(), rows[0].label.as_deref()), ("很好", Some("positive")));
        assert!((rows[0].probs[0] - 0.1).abs() < 1e-6 && rows[0].probs[1] == 0.9, "{:?}", rows[0].probs);
        assert_eq!(rows[1].label, None);
        assert!((rows[1].probs[0] - 0.75).abs() < 1e-6);
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let csv = "text,p_a,p_b,p_c\n\"x, y\",0.2,0.3,0.5\n";
        assert_eq!(
            parse_teacher("t.csv", csv.as_bytes(), &ReadOptions::default(), &three).unwrap()[0].probs,
            [0.2, 0.3, 0.5]
        );
        let err = |s: &str, labels: &[String]| {
            parse_teacher("t.tsv", s.as_bytes(), &ReadOptions::default(), labels).unwrap_err().to_string()
        };
        assert!(err("p_a\ttext\n0.5\tx\n", &three).contains("columns p_a, p_b, p_c (found p_a, text)"));
        assert!(err("text\n好\n", &labels).contains("needs one of the teacher's probability columns"));
        assert_eq!(
            err("p_positive\ttext\n1.5\tx\n", &labels),
            "t.tsv:2: p_positive must be a probability in [0, 1], found '1.5'"
        );
        assert_eq!(
            err("p_negative\tp_positive\ttext\n0.5\t0.7\tx\n", &labels),
            "t.tsv:2: the probabilities sum to 1.2, not 1"
        );
    }

    #[test]
    fn teacher_files_are_read_by_the_one_reader() {
        let labels = vec!["negative".to_string(), "positive".to_string()];
        let read = |name: &str, bytes: &[u8]| parse_teacher(name, bytes, &ReadOptions::default(), &labels);
        // GB18030 bytes, a `review` column (one of the usual text names), a stray tab in the
        // last column and a blank row: as input.rs reads every table.
        let (gbk, _, _) = encoding_rs::GB18030.encode("p_positive\treview\n0.9\t很好\t真的\n0.5\t \n");
        let rows = read("t.tsv", &gbk).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].text, "很好\t真的");
        let jsonl = read("t.jsonl", "{\"text\": \"一般\", \"p_positive\": 0.5}\n".as_bytes()).unwrap();
        assert_eq!(jsonl[0].probs, [0.5, 0.5]);
        assert!(read("t.txt", b"x\n").unwrap_err().to_string().contains("teacher files are .tsv, .csv or .jsonl"));
        assert!(read("t.xlsx", b"x").unwrap_err().to_string().contains("unknown file format '.xlsx'"));
    }

    #[test]
    fn labels_that_differ_only_by_case_width_or_space_are_refused() {
        let known = vec!["negative".to_string(), "positive".to_string()];
        let data = |labels: &'static [&'static str]| labels.iter().copied().zip(2..);
        assert_eq!(new_labels("f", &known, data(&["positive", "中立", "中立"])).unwrap(), ["中立"]);
        let err = new_labels("f", &known, data(&["negative", "Positive"])).unwrap_err().to_string();
        assert_eq!(
            err,
            "f:3: label 'Positive' differs from the model's label 'positive' only by case, width or spaces: write \
             'positive' (or map it: Positive=positive)"
        );
        assert!(new_labels("f", &known, data(&["ｎｅｇａｔｉｖｅ"])).is_err());
        assert!(
            new_labels("f", &known, data(&["Neutral", "neutral"]))
                .unwrap_err()
                .to_string()
                .contains("the label 'Neutral'")
        );
    }

    #[test]
    fn empty_texts_are_skipped_and_counted() {
        let d = parse_examples("f", "label\ttext\npositive\t  \nnegative\t差\n".as_bytes(), Format::Tsv).unwrap();
        assert_eq!(d.skipped_empty, 1);
        assert_eq!(d.examples.len(), 1);
    }
}
