//! Labelled examples from TSV, CSV or JSONL files (columns/keys `label` and `text`).
//! Parsing works on bytes so the browser can reuse it for dropped files.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub label: String,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tsv,
    Csv,
    Jsonl,
}

impl Format {
    /// From the file name's extension; unknown extensions are refused rather than guessed.
    pub fn from_name(name: &str) -> Result<Format> {
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit('.').next().unwrap_or("");
        match ext {
            "tsv" | "tab" => Ok(Format::Tsv),
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            _ => Err(Error::data(name, None, "unknown file format: use .tsv, .csv or .jsonl with 'label' and 'text'")),
        }
    }
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

/// Reads a data file from disk; the format comes from its extension.
pub fn read_examples(path: &str) -> Result<Dataset> {
    let format = Format::from_name(path)?;
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_string(), source })?;
    parse_examples(path, &bytes, format)
}

/// Parses examples; `name` is only used in error messages.
pub fn parse_examples(name: &str, bytes: &[u8], format: Format) -> Result<Dataset> {
    let text = utf8(name, bytes)?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(Error::data(name, None, "the file is empty: expected a header row and at least one example"));
    }
    let rows = match format {
        Format::Tsv => tsv_rows(name, text)?,
        Format::Csv => csv_rows(name, text)?,
        Format::Jsonl => jsonl_rows(name, text)?,
    };
    let mut dataset = Dataset::default();
    for (line, label, text) in rows {
        let label = label.trim();
        if label.is_empty() {
            return Err(Error::data(name, Some(line), "missing label"));
        }
        if text.trim().is_empty() {
            dataset.skipped_empty += 1;
            continue;
        }
        dataset.examples.push(Example { label: label.to_string(), text });
        dataset.lines.push(line);
    }
    if dataset.examples.is_empty() {
        return Err(Error::data(name, None, "no examples with non-empty text"));
    }
    Ok(dataset)
}

fn utf8<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::data(name, Some(line), "invalid UTF-8: save the file as UTF-8")
    })
}

type Row = (usize, String, String);

/// Column positions of `label` and `text` in a header row.
fn header_columns(name: &str, header: &[&str]) -> Result<(usize, usize)> {
    let find = |col: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(col));
    match (find("label"), find("text")) {
        (Some(l), Some(t)) => Ok((l, t)),
        _ => Err(Error::data(
            name,
            Some(1),
            format!("header must name the columns 'label' and 'text', found {:?}", header),
        )),
    }
}

fn tsv_rows(name: &str, text: &str) -> Result<Vec<Row>> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().unwrap_or((0, ""));
    let header: Vec<&str> = header.split('\t').collect();
    let (label_col, text_col) = header_columns(name, &header)?;
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < header.len() {
            return Err(Error::data(
                name,
                Some(i + 1),
                format!("expected {} tab-separated columns (label<TAB>text), found {}", header.len(), fields.len()),
            ));
        }
        // A stray tab inside the text (the last column) belongs to the text.
        let text =
            if text_col == header.len() - 1 { fields[text_col..].join("\t") } else { fields[text_col].to_string() };
        rows.push((i + 1, fields[label_col].to_string(), text));
    }
    Ok(rows)
}

fn csv_rows(name: &str, text: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(text.as_bytes());
    let line_of = |e: &csv::Error| e.position().map(|p| p.line() as usize);
    let header = reader.headers().map_err(|e| Error::data(name, line_of(&e), e.to_string()))?.clone();
    let (label_col, text_col) = header_columns(name, &header.iter().collect::<Vec<_>>())?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::data(name, line_of(&e), format!("malformed CSV: {e}")))?;
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        rows.push((line, record[label_col].to_string(), record[text_col].to_string()));
    }
    Ok(rows)
}

#[derive(Deserialize)]
struct JsonRow {
    label: Option<String>,
    text: Option<String>,
}

fn jsonl_rows(name: &str, text: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: JsonRow = serde_json::from_str(line).map_err(|e| {
            Error::data(
                name,
                Some(i + 1),
                format!("malformed JSON line ({e}); expected {{\"label\": \"…\", \"text\": \"…\"}}"),
            )
        })?;
        rows.push((i + 1, row.label.unwrap_or_default(), row.text.unwrap_or_default()));
    }
    Ok(rows)
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

const TEACHER_FORMAT: &str = "teacher files are .tsv or .csv with a text column and p_LABEL columns";

/// Reads a teacher file (see [`parse_teacher`]) from disk.
pub fn read_teacher(path: &str, labels: &[String]) -> Result<Vec<TeacherRow>> {
    let format = Format::from_name(path)
        .ok()
        .filter(|f| *f != Format::Jsonl)
        .ok_or_else(|| Error::data(path, None, TEACHER_FORMAT))?;
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_string(), source })?;
    parse_teacher(path, &bytes, format, labels)
}

/// Parses a teacher file: TSV or CSV with a header naming a `text` column and one `p_LABEL`
/// column per label of `labels` (for two labels one column is enough, the other being its
/// complement, as in `p_positive`), optionally `label` (kept in [`TeacherRow::label`]; training
/// takes gold labels from its `--data` files only) and other columns (ignored). Column names
/// match regardless of ASCII case.
/// Probabilities must lie in [0, 1] and sum to 1 within 0.01 (they are then normalised).
/// Rows with empty text are skipped. Errors name the file and line.
pub fn parse_teacher(name: &str, bytes: &[u8], format: Format, labels: &[String]) -> Result<Vec<TeacherRow>> {
    let text = utf8(name, bytes)?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut builder = csv::ReaderBuilder::new();
    builder.has_headers(true).flexible(false);
    match format {
        Format::Tsv => builder.delimiter(b'\t').quoting(false),
        Format::Csv => &mut builder,
        Format::Jsonl => {
            return Err(Error::data(name, None, TEACHER_FORMAT));
        }
    };
    let mut reader = builder.from_reader(text.as_bytes());
    let line_of = |e: &csv::Error| e.position().map(|p| p.line() as usize);
    let header = reader.headers().map_err(|e| Error::data(name, line_of(&e), e.to_string()))?.clone();
    let find = |col: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(col));
    let text_col = find("text").ok_or_else(|| Error::data(name, Some(1), "the header has no 'text' column"))?;
    let label_col = find("label");
    let prob_cols: Vec<Option<usize>> = labels.iter().map(|l| find(&format!("p_{l}"))).collect();
    let missing: Vec<&String> = labels.iter().zip(&prob_cols).filter(|(_, c)| c.is_none()).map(|(l, _)| l).collect();
    if missing.len() > usize::from(labels.len() == 2) {
        let wanted: Vec<String> = labels.iter().map(|l| format!("p_{l}")).collect();
        let either = if labels.len() == 2 { "one of " } else { "" };
        let found: Vec<&str> = header.iter().collect();
        return Err(Error::data(
            name,
            Some(1),
            format!(
                "the header needs {either}the teacher's probability columns {} (found {})",
                wanted.join(", "),
                found.join(", ")
            ),
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::data(name, line_of(&e), format!("malformed row: {e}")))?;
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        let text = record[text_col].to_string();
        if text.trim().is_empty() {
            continue;
        }
        let mut probs = Vec::with_capacity(labels.len());
        for (label, col) in labels.iter().zip(&prob_cols) {
            let Some(col) = col else {
                probs.push(f32::NAN); // the complement, filled in below
                continue;
            };
            let field = record[*col].trim();
            let p: f32 = field.parse().ok().filter(|p: &f32| (0.0..=1.0).contains(p)).ok_or_else(|| {
                Error::data(name, Some(line), format!("p_{label} must be a probability in [0, 1], found '{field}'"))
            })?;
            probs.push(p);
        }
        if let Some(slot) = probs.iter().position(|p| p.is_nan()) {
            probs[slot] = 1.0 - probs[1 - slot];
        }
        let sum: f32 = probs.iter().sum();
        if (sum - 1.0).abs() > 0.01 {
            return Err(Error::data(name, Some(line), format!("the probabilities sum to {sum}, not 1")));
        }
        probs.iter_mut().for_each(|p| *p /= sum);
        let label = label_col.map(|c| record[c].trim().to_string()).filter(|l| !l.is_empty());
        rows.push(TeacherRow { text, label, probs });
    }
    if rows.is_empty() {
        return Err(Error::data(name, None, "no teacher rows with non-empty text"));
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
        assert_eq!(err(b"label\ttext\n\tno label\n", Format::Tsv), "f:2: missing label");
        assert!(err(b"label\ttext\npositive\t\xff\xfe\n", Format::Tsv).starts_with("f:2: invalid UTF-8"));
        assert!(err(b"{\"label\": 1}\n", Format::Jsonl).starts_with("f:1: malformed JSON line"));
        assert!(err(b"", Format::Tsv).contains("empty"));
        assert!(err(b"label,text\na,b,c\n", Format::Csv).contains("malformed CSV"));
        assert!(Format::from_name("x.xlsx").is_err());
    }

    #[test]
    fn teacher_files_give_probabilities_in_label_order() {
        let labels = vec!["negative".to_string(), "positive".to_string()];
        let tsv = "label\tp_positive\ttext\npositive\t0.9\t很好\n\t0.25\t一般\n";
        let rows = parse_teacher("t.tsv", tsv.as_bytes(), Format::Tsv, &labels).unwrap();
        assert_eq!((rows[0].text.as_str(), rows[0].label.as_deref()), ("很好", Some("positive")));
        assert!((rows[0].probs[0] - 0.1).abs() < 1e-6 && rows[0].probs[1] == 0.9, "{:?}", rows[0].probs);
        assert_eq!(rows[1].label, None);
        assert!((rows[1].probs[0] - 0.75).abs() < 1e-6);
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let csv = "text,p_a,p_b,p_c\n\"x, y\",0.2,0.3,0.5\n";
        assert_eq!(parse_teacher("t.csv", csv.as_bytes(), Format::Csv, &three).unwrap()[0].probs, [0.2, 0.3, 0.5]);
        let err = |s: &str, labels: &[String]| {
            parse_teacher("t.tsv", s.as_bytes(), Format::Tsv, labels).unwrap_err().to_string()
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
    fn empty_texts_are_skipped_and_counted() {
        let d = parse_examples("f", "label\ttext\npositive\t  \nnegative\t差\n".as_bytes(), Format::Tsv).unwrap();
        assert_eq!(d.skipped_empty, 1);
        assert_eq!(d.examples.len(), 1);
    }
}
