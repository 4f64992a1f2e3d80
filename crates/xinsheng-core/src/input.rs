//! Every text source, read one way: files, standard input, pasted text and the page's dropped
//! files all go through [`parse_records`], so the CLI and the browser see the same reviews.
//!
//! Bytes are decoded first ([`decode`]): a BOM decides (UTF-8, UTF-16LE/BE); otherwise valid
//! UTF-8 is UTF-8 and anything else that is valid GB18030 (which includes GBK and GB2312, what
//! Chinese Excel and Notepad save) is GB18030. Nothing is ever decoded with replacement
//! characters: bytes valid in no supported encoding are an error naming the file and line, and
//! so is a source whose lines are in two encodings (a UTF-8 Chinese line beside one that is not
//! UTF-8: read whole as GB18030, the UTF-8 lines would become mojibake such as `浠锋牸鍜岄厤缃`).
//! The format comes from the file name by one rule ([`Format::from_name`]) unless it is named.
//! Then one rule for rows: a leading BOM is dropped, CRLF and LF both end a line, and rows whose
//! text is blank are skipped and counted ([`Records::skipped_blank`]). CSV fields written with
//! [`csv_field`]'s formula guard read back as the values they were written from.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, NO_VALUES, Result};

/// The character encoding of a text source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// BOM, else UTF-8 if valid, else GB18030 if valid.
    #[default]
    Auto,
    Utf8,
    /// GB18030, a superset of GBK and GB2312.
    Gb18030,
    Utf16le,
    Utf16be,
}

crate::schema::choice!(
    Encoding,
    "encoding",
    [Auto => "auto", Utf8 => "utf-8", Gb18030 => "gb18030", Utf16le => "utf-16le", Utf16be => "utf-16be"],
    aliases ["" => Auto, "utf8" => Utf8, "utf_8" => Utf8, "gbk" => Gb18030, "gb2312" => Gb18030, "cp936" => Gb18030,
             "utf16le" => Utf16le, "utf_16le" => Utf16le, "utf16be" => Utf16be, "utf_16be" => Utf16be]
);

impl Encoding {
    /// The names `--encoding` and the page accept, for messages.
    pub fn listed() -> String {
        format!("{} (gb18030 also for gbk and gb2312)", <Encoding as crate::schema::Choice>::names().join(", "))
    }

    fn codec(self) -> Option<&'static encoding_rs::Encoding> {
        match self {
            Encoding::Auto => None,
            Encoding::Utf8 => Some(encoding_rs::UTF_8),
            Encoding::Gb18030 => Some(encoding_rs::GB18030),
            Encoding::Utf16le => Some(encoding_rs::UTF_16LE),
            Encoding::Utf16be => Some(encoding_rs::UTF_16BE),
        }
    }
}

/// Decoded text and the encoding it was read as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Without a byte-order mark.
    pub text: String,
    pub encoding: Encoding,
}

/// Decodes `bytes` (see the module documentation for the rule). `name` is for error messages.
///
/// Errors: bytes that are malformed in the chosen (or every detected) encoding, naming the
/// line of the first bad byte; NUL characters (a binary file such as a spreadsheet or archive).
pub fn decode(name: &str, bytes: &[u8], encoding: Encoding) -> Result<Decoded> {
    let (codec, chosen, bom) = match encoding {
        Encoding::Auto => match encoding_rs::Encoding::for_bom(bytes) {
            Some((codec, bom)) => (codec, encoding_of(codec), bom),
            None => match std::str::from_utf8(bytes) {
                Ok(text) => return checked(name, text.to_string(), Encoding::Utf8),
                Err(e) => {
                    // A GBK line beside one that is UTF-8 Chinese: two files put together. Read
                    // whole as GB18030, the UTF-8 lines would be mojibake. (A line valid in neither
                    // encoding is reported as such below.)
                    let bad = line_at(bytes, e.valid_up_to());
                    let bad_line = bytes.split(|&b| b == b'\n').nth(bad - 1).unwrap_or_default();
                    let gbk_line =
                        encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bad_line).is_some();
                    if let (true, Some(utf8_line)) = (gbk_line, first_utf8_line(bytes)) {
                        return Err(mixed_encodings(name, bad, utf8_line));
                    }
                    let gb = encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes);
                    return match gb {
                        Some(text) => checked(name, text.into_owned(), Encoding::Gb18030),
                        None => Err(Error::data(
                            name,
                            Some(line_at(bytes, e.valid_up_to())),
                            format!(
                                "this is neither UTF-8 nor GB18030/GBK text: save the file as UTF-8, or name its \
                                 encoding ({}; --encoding, or the page's Encoding menu)",
                                Encoding::listed()
                            ),
                        )
                        .with_code("not-utf8-or-gb18030", [("encodings", Encoding::listed())])),
                    };
                }
            },
        },
        forced => {
            let codec = forced.codec().expect("not auto");
            let bom = encoding_rs::Encoding::for_bom(bytes).filter(|(c, _)| *c == codec).map_or(0, |(_, n)| n);
            (codec, forced, bom)
        }
    };
    let body = &bytes[bom..];
    let mut decoder = codec.new_decoder_without_bom_handling();
    let capacity = decoder.max_utf8_buffer_length_without_replacement(body.len()).unwrap_or(body.len() * 3);
    let mut text = String::with_capacity(capacity);
    let (result, read) = decoder.decode_to_string_without_replacement(body, &mut text, true);
    if let encoding_rs::DecoderResult::Malformed(..) = result {
        return Err(Error::data(
            name,
            Some(line_at(body, read)),
            format!(
                "not valid {} text: save the file as UTF-8, or name its encoding ({}; --encoding, or the page's \
                 Encoding menu)",
                chosen.name(),
                Encoding::listed()
            ),
        )
        .with_code("not-in-encoding", [("encoding", chosen.name().to_string()), ("encodings", Encoding::listed())]));
    }
    checked(name, text, chosen)
}

/// The 1-based number of the first line that is valid UTF-8 and holds a character of three or
/// more UTF-8 bytes (U+0800 and up: every Chinese character, full-width punctuation, emoji), if
/// any. GBK text is valid UTF-8 by chance only in short runs of two-byte sequences (`谢谢!`), so
/// such a line is UTF-8 text: none of the 17,343 reviews of `data/` saved as GBK is one.
/// (Neither encoding uses the byte `\n` inside a character, so splitting on it cuts none.)
fn first_utf8_line(bytes: &[u8]) -> Option<usize> {
    let wide_utf8 = |line: &[u8]| std::str::from_utf8(line).is_ok_and(|s| s.chars().any(|c| c >= '\u{800}'));
    bytes.split(|&b| b == b'\n').position(wide_utf8).map(|i| i + 1)
}

/// The error for a source whose lines are in two encodings: `bad` is the first line that is not
/// UTF-8, `utf8` one that is (and is not plain ASCII).
fn mixed_encodings(name: &str, bad: usize, utf8: usize) -> Error {
    Error::data(
        name,
        Some(bad),
        format!(
            "this line is not UTF-8, but line {utf8} is UTF-8 text: the file mixes encodings (lines from a GBK/GB18030 \
             file and a UTF-8 one put together), and read in either one, some lines would be garbage. Save this line \
             (and every line like it) as UTF-8; or, if the whole file is GBK, name its encoding (--encoding gb18030, \
             or the page's Encoding menu)"
        ),
    )
    .with_code("mixed-encodings", [("utf8_line", utf8)])
}

fn encoding_of(codec: &'static encoding_rs::Encoding) -> Encoding {
    if codec == encoding_rs::UTF_16LE {
        Encoding::Utf16le
    } else if codec == encoding_rs::UTF_16BE {
        Encoding::Utf16be
    } else {
        Encoding::Utf8
    }
}

fn checked(name: &str, mut text: String, encoding: Encoding) -> Result<Decoded> {
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() + 1;
        return Err(Error::data(
            name,
            Some(line),
            "this looks like a binary file (it contains NUL bytes), not text: export it as CSV, TSV, JSONL or plain text",
        )
        .with_code("binary-file", NO_VALUES));
    }
    if text.starts_with('\u{FEFF}') {
        text.drain(..'\u{FEFF}'.len_utf8());
    }
    Ok(Decoded { text, encoding })
}

/// 1-based line of byte `offset`.
fn line_at(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// How a source lays out its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One review per line, no header.
    Txt,
    /// Tab-separated with a header row; no quoting (a tab inside the last column's text is kept).
    Tsv,
    /// RFC 4180 CSV with a header row: quoted fields may hold commas, quotes and newlines.
    Csv,
    /// One JSON object per line with a string `text` and optionally `label`.
    Jsonl,
}

impl Format {
    /// The names `--format` and the page's Format menu accept, for messages.
    pub fn listed() -> String {
        <Format as crate::schema::Choice>::names().join(", ")
    }

    /// The one rule for file names, shared by the CLI, Python and the page: the extension of the
    /// last path component decides: `.txt`/`.text` one review per line, `.tsv`/`.tab`, `.csv`,
    /// `.jsonl`/`.ndjson`/`.json` (one object per line). A name without an extension (`reviews`,
    /// `-`, `<stdin>`, a dotfile) is one review per line. Any other extension is refused rather
    /// than guessed (a spreadsheet read as text would classify its header and its bytes); name the
    /// format instead (`ReadOptions::format`: `--format`, `format=`, the page's Format menu).
    pub fn from_name(name: &str) -> Result<Format> {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let ext = match base.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
            _ => return Ok(Format::Txt),
        };
        match ext.as_str() {
            "txt" | "text" => Ok(Format::Txt),
            "tsv" | "tab" => Ok(Format::Tsv),
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" => Ok(Format::Jsonl),
            _ => {
                let spreadsheet = matches!(ext.as_str(), "xlsx" | "xls" | "xlsm" | "ods" | "numbers" | "et");
                let hint = if spreadsheet { "A spreadsheet must be saved as CSV (UTF-8) first. " } else { "" };
                Err(Error::data(
                    name,
                    None,
                    format!(
                        "unknown file format '.{ext}': xinsheng reads .txt (one review per line, also a name without \
                         an extension), .tsv, .csv and .jsonl/.json (one JSON object per line) with a text column \
                         (and a label column for labelled data). {hint}If this file is one of those under another \
                         name, rename it or name its format ({}: --format, format= in Python, or the page's Format menu)",
                        Format::listed()
                    ),
                )
                .with_code("unknown-format", [("extension", ext.clone()), ("formats", Format::listed())]))
            }
        }
    }
}

crate::schema::choice!(
    Format,
    "format",
    [Txt => "txt", Tsv => "tsv", Csv => "csv", Jsonl => "jsonl"],
    aliases ["text" => Txt, "tab" => Tsv, "ndjson" => Jsonl, "json" => Jsonl,
             ".txt" => Txt, ".text" => Txt, ".tsv" => Tsv, ".tab" => Tsv, ".csv" => Csv,
             ".jsonl" => Jsonl, ".ndjson" => Jsonl, ".json" => Jsonl]
);

/// One review read from a source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    /// 1-based line where the row starts.
    pub line: usize,
    pub text: String,
    /// The row's label, when the source has a label column and this row fills it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Every column of the row as `(header, value)` (JSONL: every key, numbers as written),
    /// kept only by [`parse_table`] for readers that need more than the text and label (teacher
    /// files' `p_LABEL` columns); empty otherwise.
    #[serde(skip)]
    pub columns: Vec<(String, String)>,
}

/// The reviews of one source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Records {
    pub format: Format,
    /// The encoding the bytes were decoded as.
    pub encoding: Encoding,
    /// True when the source has a label column (or `label` keys); rows may still lack one.
    pub labelled: bool,
    pub records: Vec<Record>,
    /// Rows skipped because their text was empty or whitespace only.
    pub skipped_blank: usize,
}

/// Column names tried, in order, when no `text_column` is given: the names public Chinese
/// sentiment sets and annotation tools use.
pub const TEXT_COLUMNS: [&str; 7] = ["text", "review", "content", "sentence", "comment", "评论", "内容"];
/// Column names tried, in order, when no `label_column` is given.
pub const LABEL_COLUMNS: [&str; 6] = ["label", "sentiment", "labels", "polarity", "标签", "情感"];

/// Renames labels as they are read (`1=positive,0=negative`): sets that number their classes
/// or spell them differently train and evaluate against the model's names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelMap(pub Vec<(String, String)>);

impl LabelMap {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, label: &str) -> Option<&str> {
        self.0.iter().find(|(from, _)| from == label).map(|(_, to)| to.as_str())
    }
}

impl FromStr for LabelMap {
    type Err = Error;

    /// `FROM=TO` pairs separated by commas; spaces around names are ignored.
    fn from_str(s: &str) -> Result<Self> {
        let mut pairs = Vec::new();
        for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (from, to) = pair
                .split_once('=')
                .map(|(a, b)| (a.trim(), b.trim()))
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| {
                    Error::Invalid(format!("label map entry '{pair}' is not FROM=TO (e.g. 1=positive,0=negative)"))
                })?;
            if pairs.iter().any(|(f, _): &(String, String)| f == from) {
                return Err(Error::Invalid(format!("label map names '{from}' twice")));
            }
            pairs.push((from.to_string(), to.to_string()));
        }
        Ok(LabelMap(pairs))
    }
}

/// Written and read as its `FROM=TO,…` string (the CLI's `--label-map`, Python's `label_map=`).
impl Serialize for LabelMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LabelMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for LabelMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(a, b)| format!("{a}={b}")).collect();
        f.write_str(&pairs.join(","))
    }
}

/// How to read a source. The defaults detect everything: the format from the file name, the
/// encoding from the bytes, the columns from [`TEXT_COLUMNS`] and [`LABEL_COLUMNS`].
///
/// One schema for every driver: the CLI's `--format` … `--label-map`, Python's `format=` …
/// `label_map=` and the page's `{format, encoding, textColumn, labelColumn, labelMap}` are
/// these fields, laid over the defaults by [`crate::schema::overlay`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadOptions {
    pub format: Option<Format>,
    pub encoding: Encoding,
    /// The column (JSONL: key) holding the review text.
    pub text_column: Option<String>,
    /// The column (key) holding the label.
    pub label_column: Option<String>,
    /// `FROM=TO` pairs, as [`LabelMap`] parses them.
    pub label_map: LabelMap,
}

impl ReadOptions {
    /// The format to read `name` as: the one given, else the one its extension names.
    pub fn format_of(&self, name: &str) -> Result<Format> {
        match self.format {
            Some(format) => Ok(format),
            None => Format::from_name(name),
        }
    }
}

/// Reads a file from disk (see [`parse_records`]).
pub fn read_records(path: &str, options: &ReadOptions) -> Result<Records> {
    options.format_of(path)?; // an unknown extension is reported before looking for the file
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_string(), source })?;
    parse_records(path, &bytes, options)
}

/// Decodes and parses one source. `name` is only used in error messages (`file:line: …`) and,
/// without `options.format`, for its extension.
///
/// Tables (TSV, CSV) need a header with a text column (`options.text_column`, else the first
/// of [`TEXT_COLUMNS`] present, any ASCII case); a label column is optional. JSONL objects
/// need a string text; the label may be a string, a number, or a list of one (as annotation
/// tools such as doccano write it). Labels pass through `options.label_map` when it is given
/// (a label it lacks is an error). Errors: undecodable bytes, a missing text column, malformed
/// rows, and a source with no non-blank review.
pub fn parse_records(name: &str, bytes: &[u8], options: &ReadOptions) -> Result<Records> {
    parse_rows(name, bytes, options, false)
}

/// [`parse_records`] keeping every column of each row in [`Record::columns`]: the same rules
/// (encodings, BOM, text-column names, blank rows, CSV quoting and guard), for tables that carry
/// more than a text and a label.
pub fn parse_table(name: &str, bytes: &[u8], options: &ReadOptions) -> Result<Records> {
    parse_rows(name, bytes, options, true)
}

fn parse_rows(name: &str, bytes: &[u8], options: &ReadOptions, keep_columns: bool) -> Result<Records> {
    let format = options.format_of(name)?;
    let decoded = decode(name, bytes, options.encoding)?;
    let text = decoded.text.as_str();
    if text.trim().is_empty() {
        let header = if matches!(format, Format::Txt) { "" } else { "a header row and " };
        let error = Error::data(name, None, format!("the file is empty: expected {header}at least one review"));
        return Err(if header.is_empty() {
            error.with_code("empty-file", NO_VALUES)
        } else {
            error.with_code("empty-table", NO_VALUES)
        });
    }
    let mut out =
        Records { format, encoding: decoded.encoding, labelled: false, records: Vec::new(), skipped_blank: 0 };
    let map = &options.label_map;
    let mut push = |line: usize, text: String, label: Option<String>, columns: &dyn Fn() -> Columns| -> Result<()> {
        if text.trim().is_empty() {
            out.skipped_blank += 1;
            return Ok(());
        }
        let mut label = label.map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
        if let (Some(l), false) = (&label, map.is_empty()) {
            let mapped = map.get(l).ok_or_else(|| {
                Error::data(name, Some(line), format!("label '{l}' is not in the label map ({map})"))
                    .with_code("label-not-in-map", [("label", l.to_string()), ("map", map.to_string())])
            })?;
            label = Some(mapped.to_string());
        }
        let columns = if keep_columns { columns() } else { Vec::new() };
        out.records.push(Record { line, text, label, columns });
        Ok(())
    };
    let labelled = match format {
        Format::Txt => {
            for (i, line) in text.lines().enumerate() {
                push(i + 1, line.trim().to_string(), None, &Vec::new)?;
            }
            false
        }
        Format::Tsv => tsv_rows(name, text, options, &mut push)?,
        Format::Csv => csv_rows(name, text, options, &mut push)?,
        Format::Jsonl => jsonl_rows(name, text, options, &mut push)?,
    };
    out.labelled = labelled;
    if out.records.is_empty() {
        let blank = match out.skipped_blank {
            0 => String::new(),
            1 => " (1 blank row skipped)".to_string(),
            n => format!(" ({n} blank rows skipped)"),
        };
        return Err(Error::data(name, None, format!("no reviews found: the file has no non-blank text{blank}"))
            .with_code("no-reviews", [("blank", out.skipped_blank)]));
    }
    Ok(out)
}

type Columns = Vec<(String, String)>;
/// One row to `parse_rows`: its line, text, label and (lazily, when kept) every column.
type Push<'a> = dyn FnMut(usize, String, Option<String>, &dyn Fn() -> Columns) -> Result<()> + 'a;

fn same_name(a: &str, b: &str) -> bool {
    a.trim().trim_start_matches('\u{FEFF}').eq_ignore_ascii_case(b.trim())
}

/// Positions of the text and (optional) label columns in a header row.
fn header_columns(name: &str, header: &[&str], options: &ReadOptions) -> Result<(usize, Option<usize>)> {
    let find = |col: &str| header.iter().position(|h| same_name(h, col));
    let missing = |what: &str, col: &str| {
        let (option, field) = if what == "text" { ("--text-column", "Text") } else { ("--label-column", "Label") };
        Error::data(
            name,
            Some(1),
            format!(
                "the header row has no {what} column '{col}'; found {header:?}: name one of those ({option}, or the \
                 page's {field} column field)"
            ),
        )
    };
    let missing = |what: &str, col: &str| {
        let values = [("column", col.to_string()), ("found", header.join(", "))];
        match what {
            "text" => missing(what, col).with_code("no-text-column-named", values),
            _ => missing(what, col).with_code("no-label-column-named", values),
        }
    };
    let text = match &options.text_column {
        Some(col) => find(col).ok_or_else(|| missing("text", col))?,
        None => TEXT_COLUMNS.iter().find_map(|c| find(c)).ok_or_else(|| {
            Error::data(
                name,
                Some(1),
                format!(
                    "the header row needs a text column (one of {}; or name it with --text-column, or the page's Text \
                     column field) and, for labelled data, a label column; found {header:?}",
                    TEXT_COLUMNS.join(", ")
                ),
            )
            .with_code("no-text-column", [("columns", TEXT_COLUMNS.join(", ")), ("found", header.join(", "))])
        })?,
    };
    let label = match &options.label_column {
        Some(col) => Some(find(col).ok_or_else(|| missing("label", col))?),
        None => LABEL_COLUMNS.iter().find_map(|c| find(c)),
    };
    Ok((text, label))
}

fn tsv_rows(name: &str, text: &str, options: &ReadOptions, push: &mut Push) -> Result<bool> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().unwrap_or((0, ""));
    let header: Vec<&str> = header.split('\t').collect();
    let (text_col, label_col) = header_columns(name, &header, options)?;
    for (i, line) in lines {
        if line.trim().is_empty() {
            push(i + 1, String::new(), None, &Vec::new)?;
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < header.len() {
            return Err(Error::data(
                name,
                Some(i + 1),
                format!(
                    "expected {} tab-separated columns ({}), found {}",
                    header.len(),
                    header.join("<TAB>"),
                    fields.len()
                ),
            )
            .with_code(
                "tsv-columns",
                [
                    ("expected", header.len().to_string()),
                    ("columns", header.join(", ")),
                    ("count", fields.len().to_string()),
                ],
            ));
        }
        // A stray tab inside the text (the last column) belongs to the text.
        let text =
            if text_col == header.len() - 1 { fields[text_col..].join("\t") } else { fields[text_col].to_string() };
        let columns = || header.iter().zip(&fields).map(|(h, f)| (h.to_string(), f.to_string())).collect();
        push(i + 1, text, label_col.map(|c| fields[c].to_string()), &columns)?;
    }
    Ok(label_col.is_some())
}

fn csv_rows(name: &str, text: &str, options: &ReadOptions, push: &mut Push) -> Result<bool> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(text.as_bytes());
    let line_of = |e: &csv::Error| e.position().map(|p| p.line() as usize);
    let malformed = |e: &csv::Error, message: String| {
        Error::data(name, line_of(e), message).with_code("malformed-csv", [("detail", e.to_string())])
    };
    let header = reader.headers().map_err(|e| malformed(&e, e.to_string()))?.clone();
    let (text_col, label_col) = header_columns(name, &header.iter().collect::<Vec<_>>(), options)?;
    for record in reader.records() {
        let record = record.map_err(|e| malformed(&e, format!("malformed CSV: {e}")))?;
        let line = record.position().map_or(0, |p| record_line(text.as_bytes(), p.byte() as usize));
        let columns = || header.iter().zip(&record).map(|(h, f)| (h.to_string(), unguarded(f).to_string())).collect();
        push(
            line,
            unguarded(&record[text_col]).to_string(),
            label_col.map(|c| unguarded(&record[c]).to_string()),
            &columns,
        )?;
    }
    Ok(label_col.is_some())
}

/// What a cell may begin with that makes a spreadsheet (Excel, LibreOffice, Google Sheets) read
/// it as a formula: `=`, `+`, `-`, `@`, tab and carriage return (the OWASP CSV-injection list).
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One CSV field as the project writes it (the page's predictions export, `csvField` in
/// `web/app/files.js`, follows the same rule; `tests/fixtures/files/formulas.json` holds both to
/// one table). A value that starts with one of [`FORMULA_STARTS`], after any apostrophes, gets a
/// leading `'` (so `=HYPERLINK(…)` is shown as text, never run) and is quoted; any other value is
/// quoted when it holds `"`, `,`, CR or LF or has surrounding white space. Reading CSV undoes the
/// `'` (see [`parse_records`]), so an export reads back as the texts it was made from.
pub fn csv_field(value: &str) -> String {
    let guarded = value.trim_start_matches('\'').starts_with(FORMULA_STARTS);
    let field = if guarded { format!("'{value}") } else { value.to_string() };
    // JavaScript's String.prototype.trim: Unicode white space and U+FEFF, but not U+0085.
    let space = |c: char| (c.is_whitespace() && c != '\u{85}') || c == '\u{FEFF}';
    if guarded || field.contains(['"', ',', '\r', '\n']) || field.trim_matches(space) != field {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

/// Undoes [`csv_field`]'s guard on a CSV field as read: one leading `'` comes off a value that is
/// apostrophes followed by a formula character (the mark spreadsheets use for "this is text").
fn unguarded(field: &str) -> &str {
    let rest = field.trim_start_matches('\'');
    if rest.len() < field.len() && rest.starts_with(FORMULA_STARTS) { &field[1..] } else { field }
}

/// The 1-based line where a CSV record starting at byte `start` begins. (The csv crate's own line
/// count is one short after CRLF: the record's position falls before the `\n` of the previous
/// line's terminator.)
pub(crate) fn record_line(bytes: &[u8], start: usize) -> usize {
    let mut at = start.min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
        at += 1;
    }
    line_at(bytes, at)
}

fn jsonl_rows(name: &str, text: &str, options: &ReadOptions, push: &mut Push) -> Result<bool> {
    use serde_json::Value;
    let mut labelled = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            push(i + 1, String::new(), None, &Vec::new)?;
            continue;
        }
        let bad = |what: String| {
            Error::data(
                name,
                Some(i + 1),
                format!("{what}; expected {{\"text\": \"…\", \"label\": \"…\"}} on each line"),
            )
        };
        let bad_label = |found: &Value| {
            bad(format!("a label must be a string or a number, found {found}"))
                .with_code("bad-label", [("found", found.to_string())])
        };
        if line.trim_start().starts_with('[') {
            return Err(bad(
                "malformed JSON line: a JSON array, where each line must be one JSON object (JSON Lines); a file that \
                 is one array of objects can be rewritten one object per line, e.g. with jq -c '.[]'"
                    .into(),
            )
            .with_code("json-array-line", NO_VALUES));
        }
        let row: serde_json::Map<String, Value> = serde_json::from_str(line)
            .map_err(|e| bad(format!("malformed JSON line ({e})")).with_code("malformed-json", [("detail", &e)]))?;
        let key = |wanted: &Option<String>, defaults: &[&str]| -> Option<String> {
            let names: Vec<&str> = match wanted {
                Some(w) => vec![w.as_str()],
                None => defaults.to_vec(),
            };
            names.iter().find_map(|n| row.keys().find(|k| same_name(k, n)).cloned())
        };
        let text_key = key(&options.text_column, &TEXT_COLUMNS).ok_or_else(|| {
            let mut seen: Vec<String> = row.keys().map(|k| format!("\"{k}\"")).collect();
            seen.sort();
            let seen = if seen.is_empty() { "no keys".to_string() } else { format!("the keys {}", seen.join(", ")) };
            let message = match &options.text_column {
                Some(wanted) => format!(
                    "no \"{wanted}\" key (the text column asked for); this line has {seen}: name the key that holds \
                     the review (--text-column, or the page's Text column field)"
                ),
                None => format!(
                    "no \"text\" key (nor {}); this line has {seen}: name the key that holds the review \
                     (--text-column KEY, or the page's Text column field)",
                    TEXT_COLUMNS[1..].join(", ")
                ),
            };
            let keys = row.keys().cloned().collect::<Vec<_>>().join(", ");
            let error = Error::data(name, Some(i + 1), message);
            match &options.text_column {
                Some(wanted) => error.with_code("no-text-key-named", [("key", wanted.clone()), ("keys", keys)]),
                None => error.with_code("no-text-key", [("keys", keys), ("columns", TEXT_COLUMNS.join(", "))]),
            }
        })?;
        let text = match &row[&text_key] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => {
                return Err(bad(format!("\"{text_key}\" must be a string, found {other}"))
                    .with_code("text-not-string", [("key", text_key.clone()), ("found", other.to_string())]));
            }
        };
        let label_value = key(&options.label_column, &LABEL_COLUMNS).map(|k| &row[&k]);
        // A label key that is present makes the source labelled even where it is null or `[]`
        // (doccano's unlabelled review): that row then has no label, reported by its line.
        labelled |= label_value.is_some();
        let label = match label_value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(Value::Array(list)) if list.is_empty() => None,
            Some(Value::Array(list)) if list.len() == 1 => match &list[0] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                other => return Err(bad_label(other)),
            },
            Some(Value::Array(list)) => {
                return Err(bad(format!("{} labels {list:?} on one review; give it exactly one", list.len()))
                    .with_code(
                        "many-labels",
                        [("count", list.len().to_string()), ("labels", Value::Array(list.clone()).to_string())],
                    ));
            }
            Some(other) => return Err(bad_label(other)),
        };
        let columns = || {
            row.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    )
                })
                .collect()
        };
        push(i + 1, text, label, &columns)?;
    }
    Ok(labelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(format: Format) -> ReadOptions {
        ReadOptions { format: Some(format), ..ReadOptions::default() }
    }

    fn texts(r: &Records) -> Vec<&str> {
        r.records.iter().map(|r| r.text.as_str()).collect()
    }

    #[test]
    fn gb18030_utf16_and_bom_utf8_decode_to_the_same_text() {
        let text = "text,label\n\"很好，\n真的\",正面\n";
        let (gb, _, bad) = encoding_rs::GB18030.encode(text);
        assert!(!bad);
        let mut utf16le = vec![0xFF, 0xFE];
        utf16le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let mut bom8 = "\u{FEFF}".as_bytes().to_vec();
        bom8.extend(text.replace('\n', "\r\n").as_bytes());
        for (bytes, encoding) in [(&gb[..], Encoding::Gb18030), (&utf16le, Encoding::Utf16le), (&bom8, Encoding::Utf8)]
        {
            let r = parse_records("f.csv", bytes, &ReadOptions::default()).unwrap();
            assert_eq!(r.encoding, encoding);
            assert_eq!(texts(&r).iter().map(|t| t.replace('\r', "")).collect::<Vec<_>>(), ["很好，\n真的"]);
            assert_eq!(r.records[0].label.as_deref(), Some("正面"));
        }
    }

    #[test]
    fn undecodable_bytes_name_the_line_and_never_become_replacement_characters() {
        let err = decode("x.txt", b"ok\nfine\n\xff\xff\xff\n", Encoding::Auto).unwrap_err().to_string();
        assert!(err.starts_with("x.txt:3: this is neither UTF-8 nor GB18030"), "{err}");
        let err = decode("x.txt", "好\n".as_bytes(), Encoding::Gb18030).map(|d| d.text);
        assert_ne!(err.ok().as_deref(), Some("好\n"), "UTF-8 bytes forced through GB18030 are not the same text");
        let err = decode("x.txt", b"a\n\xff\n", Encoding::Utf8).unwrap_err().to_string();
        assert_eq!(err.split(": ").take(2).collect::<Vec<_>>(), ["x.txt:2", "not valid utf-8 text"]);
        let err = decode("x.csv", b"PK\x03\x04\0\0", Encoding::Auto).unwrap_err().to_string();
        assert!(err.contains("binary file"), "{err}");
        assert!("latin1".parse::<Encoding>().is_err());
        assert_eq!("GBK".parse::<Encoding>().unwrap(), Encoding::Gb18030);
        for e in [Encoding::Auto, Encoding::Utf8, Encoding::Gb18030, Encoding::Utf16le, Encoding::Utf16be] {
            assert_eq!(serde_json::to_value(e).unwrap(), e.name(), "serialised as its name");
            assert_eq!(e.name().parse::<Encoding>().unwrap(), e);
        }
    }

    #[test]
    fn blank_rows_are_skipped_and_counted_in_every_format() {
        let txt = parse_records("f.txt", "\u{FEFF}很好\r\n\r\n   \n太差\n".as_bytes(), &opts(Format::Txt)).unwrap();
        assert_eq!(texts(&txt), ["很好", "太差"]);
        assert_eq!((txt.skipped_blank, txt.records[1].line, txt.labelled), (2, 4, false));
        let tsv = parse_records("f.tsv", "text\n好\n\n \n".as_bytes(), &opts(Format::Tsv)).unwrap();
        assert_eq!((texts(&tsv), tsv.skipped_blank), (vec!["好"], 2));
        let jsonl = "{\"text\":\"a\\tb\",\"label\":[\"正面\"]}\n\n{\"text\":\" \"}\n";
        let jsonl = parse_records("f.jsonl", jsonl.as_bytes(), &opts(Format::Jsonl)).unwrap();
        assert_eq!((texts(&jsonl), jsonl.skipped_blank, jsonl.labelled), (vec!["a\tb"], 2, true));
        assert_eq!(jsonl.records[0].label.as_deref(), Some("正面"));
        let only_blank = parse_records("f.tsv", b"text\n\n \n", &opts(Format::Tsv)).unwrap_err().to_string();
        assert_eq!(only_blank, "f.tsv: no reviews found: the file has no non-blank text (2 blank rows skipped)");
        let one_blank = parse_records("f.tsv", b"text\n \n", &opts(Format::Tsv)).unwrap_err().to_string();
        assert_eq!(one_blank, "f.tsv: no reviews found: the file has no non-blank text (1 blank row skipped)");
        let empty = parse_records("f.txt", b"\n \n", &opts(Format::Txt)).unwrap_err().to_string();
        assert_eq!(empty, "f.txt: the file is empty: expected at least one review");
    }

    #[test]
    fn columns_and_labels_as_public_sets_and_annotation_tools_name_them() {
        let with = |text: Option<&str>, label: Option<&str>, map: &str| ReadOptions {
            text_column: text.map(String::from),
            label_column: label.map(String::from),
            label_map: map.parse().unwrap(),
            ..ReadOptions::default()
        };
        // Common names are found without options; numeric labels map to the model's names.
        let csv = "id,review,sentiment\n1,很好,1\n2,太差,0\n";
        let r = parse_records("f.csv", csv.as_bytes(), &with(None, None, "1=positive,0=negative")).unwrap();
        assert_eq!(texts(&r), ["很好", "太差"]);
        assert_eq!(r.records.iter().map(|r| r.label.as_deref().unwrap()).collect::<Vec<_>>(), ["positive", "negative"]);
        // Named columns win; JSON numbers and doccano's one-element lists are labels too.
        let jsonl = "{\"content\":\"好\",\"y\":1}\n{\"content\":\"差\",\"y\":[0]}\n";
        let r = parse_records("f.jsonl", jsonl.as_bytes(), &with(Some("content"), Some("y"), "")).unwrap();
        assert_eq!(r.records.iter().map(|r| r.label.as_deref().unwrap()).collect::<Vec<_>>(), ["1", "0"]);
        let err = |o: ReadOptions, s: &str, n: &str| parse_records(n, s.as_bytes(), &o).unwrap_err().to_string();
        assert_eq!(
            err(with(None, None, "1=positive"), csv, "f.csv"),
            "f.csv:3: label '0' is not in the label map (1=positive)"
        );
        assert!(
            err(with(Some("body"), None, ""), csv, "f.csv")
                .starts_with("f.csv:1: the header row has no text column 'body'")
        );
        assert!("1=positive,0".parse::<LabelMap>().is_err());
        assert!("a=b,a=c".parse::<LabelMap>().is_err());
    }

    #[test]
    fn tables_need_a_text_column_and_rows_name_their_lines() {
        let err = |s: &str, f: Format| parse_records("f", s.as_bytes(), &opts(f)).unwrap_err().to_string();
        assert!(
            err("title\n好\n", Format::Csv).starts_with("f:1: the header row needs a text column (one of text, review")
        );
        assert!(err("label,text\na,b,c\n", Format::Csv).contains("malformed CSV"));
        assert!(err("{\"label\": \n", Format::Jsonl).starts_with("f:1: malformed JSON line"));
        assert!(err("[1, 2]\n", Format::Jsonl).starts_with("f:1: malformed JSON line"));
        assert!(err("{\"text\": 5}\n", Format::Jsonl).starts_with("f:1: \"text\" must be a string"));
        assert!(err("{\"label\": [\"a\", \"b\"], \"text\": \"x\"}\n", Format::Jsonl).contains("2 labels"));
        assert!(err("label\ttext\nno tab\n", Format::Tsv).starts_with("f:2: expected 2 tab-separated columns"));
        for ending in ["\n", "\r\n"] {
            let text = "id,text\n1,\"a\nb\"\n2,c\n".replace('\n', ending);
            let csv = parse_records("f", text.as_bytes(), &opts(Format::Csv)).unwrap();
            assert_eq!(csv.records.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 4], "{ending:?}");
            assert!(!csv.labelled);
        }
        assert!(Format::from_name("x.xlsx").is_err());
        assert_eq!(Format::from_name("X.TXT").unwrap(), Format::Txt);
    }

    /// A UTF-8 file with a line pasted from a GBK one (issue 23): read whole as GB18030 its UTF-8
    /// lines became "浠锋牸鍜岄厤缃…"; now it is an error naming the line, and GBK files still read.
    #[test]
    fn a_file_mixing_utf8_and_gbk_lines_is_an_error_naming_the_line_never_mojibake() {
        let gbk = |s: &str| encoding_rs::GB18030.encode(s).0.into_owned();
        let mut mixed = "价格和配置都很满意\nok\n".as_bytes().to_vec();
        mixed.extend(gbk("物流太慢了，差评\n"));
        mixed.extend("第三行也是 UTF-8\n".as_bytes());
        let err = parse_records("mixed.txt", &mixed, &ReadOptions::default()).unwrap_err().to_string();
        assert!(err.starts_with("mixed.txt:3: this line is not UTF-8, but line 1 is UTF-8 text"), "{err}");
        assert!(err.contains("--encoding gb18030") && err.contains("Encoding menu"), "{err}");
        assert!(!err.contains("浠锋牸"), "{err}");
        // The UTF-8 line may come after the first line that is not.
        let mut late = gbk("物流太慢了\n");
        late.extend("价格和配置都很满意\n".as_bytes());
        let err = decode("late.csv", &late, Encoding::Auto).unwrap_err().to_string();
        assert!(err.starts_with("late.csv:1: this line is not UTF-8, but line 2 is UTF-8 text"), "{err}");
        // Forced UTF-8 names the same line.
        let err = decode("mixed.txt", &mixed, Encoding::Utf8).unwrap_err().to_string();
        assert!(err.starts_with("mixed.txt:3: not valid utf-8 text"), "{err}");
        // Whole GBK files are still detected, short lines that happen to be valid UTF-8 (谢谢!)
        // and ASCII lines included: every review of the test split, saved as GBK, reads back.
        let corpus = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/test.tsv")).unwrap();
        let corpus = format!("{corpus}谢谢!\nok\n");
        let decoded = decode("test-gbk.tsv", &gbk(&corpus), Encoding::Auto).unwrap();
        assert_eq!((decoded.encoding, decoded.text == corpus), (Encoding::Gb18030, true));
    }

    /// One rule for file names (issue 23: the CLI read a CSV renamed .xlsx as text, classifying
    /// its header, while the page refused it): the core decides for the CLI, Python and the page.
    #[test]
    fn one_rule_for_file_names_unknown_extensions_are_refused_naming_the_formats_and_the_option() {
        for (name, format) in [
            ("reviews.txt", Format::Txt),
            ("reviews", Format::Txt),
            ("-", Format::Txt),
            ("<stdin>", Format::Txt),
            ("dir.v2/reviews", Format::Txt),
            (".reviews", Format::Txt),
            ("C:\\data.d\\x.CSV", Format::Csv),
            ("a.tab", Format::Tsv),
            ("doccano.json", Format::Jsonl),
            ("a.ndjson", Format::Jsonl),
        ] {
            assert_eq!(Format::from_name(name).unwrap(), format, "{name}");
        }
        let csv = "text,label\n很好,positive\n".as_bytes();
        let err = parse_records("a.xlsx", csv, &ReadOptions::default()).unwrap_err().to_string();
        assert!(err.starts_with("a.xlsx: unknown file format '.xlsx': xinsheng reads .txt"), "{err}");
        for part in ["spreadsheet must be saved as CSV", "txt, tsv, csv, jsonl", "--format", "Format menu"] {
            assert!(err.contains(part), "{part}: {err}");
        }
        assert!(!Format::from_name("a.bak").unwrap_err().to_string().contains("spreadsheet"));
        let named = ReadOptions { format: Some("csv".parse().unwrap()), ..ReadOptions::default() };
        let r = parse_records("a.xlsx", csv, &named).unwrap();
        assert_eq!(
            (texts(&r), r.records[0].label.as_deref()),
            (vec!["很好"], Some("positive")),
            "the header is no review"
        );
        for f in [Format::Txt, Format::Tsv, Format::Csv, Format::Jsonl] {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
            assert!(Format::listed().contains(f.name()));
        }
        assert!("xlsx".parse::<Format>().unwrap_err().to_string().contains("expected txt, tsv, csv, jsonl"));
        let err = parse_records("a.json", b"[{\"text\": \"\xe5\xa5\xbd\"}]\n", &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().starts_with("a.json:1: malformed JSON line: a JSON array"), "{err}");
    }

    /// doccano's unlabelled review (`"label": []`) and its older `data` key (issue 23).
    #[test]
    fn doccano_rows_without_a_label_or_with_another_text_key_are_worded_by_what_they_lack() {
        let jsonl = "{\"text\":\"很好\",\"label\":[\"正面\"]}\n{\"text\":\"一般\",\"label\":[]}\n";
        let r = parse_records("d.jsonl", jsonl.as_bytes(), &ReadOptions::default()).unwrap();
        assert!(r.labelled, "a label key makes the file labelled, even where a row's list is empty");
        assert_eq!(r.records[1].label, None);
        let err = crate::data::parse_examples_with("d.jsonl", jsonl.as_bytes(), &ReadOptions::default());
        let err = err.unwrap_err().to_string();
        assert!(err.starts_with("d.jsonl:2: missing label: this review has no label"), "{err}");
        let unlabelled = "{\"text\":\"一般\",\"label\":[]}\n";
        let err = crate::data::parse_examples("d.jsonl", unlabelled.as_bytes(), Format::Jsonl).unwrap_err().to_string();
        assert!(err.starts_with("d.jsonl:1: missing label"), "not a missing label column: {err}");

        let data = "{\"id\":7,\"data\":\"很好\",\"label\":[\"正面\"]}\n";
        let err = parse_records("d.jsonl", data.as_bytes(), &ReadOptions::default()).unwrap_err().to_string();
        assert!(err.starts_with("d.jsonl:1: no \"text\" key (nor review, content"), "{err}");
        for part in ["the keys \"data\", \"id\", \"label\"", "--text-column", "Text column field"] {
            assert!(err.contains(part), "{part}: {err}");
        }
        let body = ReadOptions { text_column: Some("body".into()), ..ReadOptions::default() };
        let err = parse_records("d.jsonl", data.as_bytes(), &body).unwrap_err().to_string();
        assert!(
            err.starts_with("d.jsonl:1: no \"body\" key (the text column asked for); this line has the keys"),
            "{err}"
        );
        let named = ReadOptions { text_column: Some("data".into()), ..ReadOptions::default() };
        let r = parse_records("d.jsonl", data.as_bytes(), &named).unwrap();
        assert_eq!((texts(&r), r.records[0].label.as_deref()), (vec!["很好"], Some("正面")));
    }

    /// The table the page's export is held to as well (tests/browser/files.test.mjs).
    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_guarded_and_read_back_as_written() {
        let table: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/files/formulas.json")).unwrap();
        let cases: Vec<(&str, &str)> = table["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["text"].as_str().unwrap(), c["cell"].as_str().unwrap()))
            .collect();
        assert!(cases.len() >= 8);
        for (text, cell) in &cases {
            assert_eq!(csv_field(text), *cell, "{text:?}");
        }
        let mut csv = String::from("text,label\r\n");
        for (cell, label) in cases.iter().map(|c| c.1).zip([csv_field("-1"), csv_field("=SUM(A1)")].iter().cycle()) {
            csv += &format!("{cell},{label}\r\n");
        }
        let r = parse_records("export.csv", csv.as_bytes(), &ReadOptions::default()).unwrap();
        assert_eq!(texts(&r), cases.iter().map(|c| c.0).collect::<Vec<_>>());
        assert_eq!(r.records[0].label.as_deref(), Some("-1"));
        assert_eq!(r.records[1].label.as_deref(), Some("=SUM(A1)"));
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field(" x"), "\" x\"");
        assert_eq!(csv_field("0.5"), "0.5");
    }
}
