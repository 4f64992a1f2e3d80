use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure a user can cause: bad data, a bad bundle, a bad option.
/// Messages say where (file, line) and what to do, because they are printed as-is.
#[derive(Debug)]
pub enum Error {
    /// A data file could not be read or parsed; `line` is 1-based when known.
    Data {
        file: String,
        line: Option<usize>,
        message: String,
        /// What kind of fault, for interfaces that word the message themselves.
        code: Option<Code>,
    },
    /// A model bundle is missing, corrupt, truncated or incompatible.
    Bundle {
        path: String,
        message: String,
    },
    /// Options that cannot work together (for example an unknown label in eval data).
    Invalid(String),
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A stable name for a kind of fault and the values its message mentions, for interfaces that
/// word their own messages: the page looks up `err-<code>` in its string tables (Chinese or
/// English) and fills in the values, and shows the English message when it has no string for
/// the code. A code keeps its meaning and its value names once published; the message is the
/// English wording of the same thing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Code {
    /// Kebab-case, e.g. `no-text-column`.
    pub code: &'static str,
    /// Values by name, as text. [`Error::code`] adds `file` and, when known, `line`.
    pub values: BTreeMap<&'static str, String>,
}

/// No values, for [`Error::with_code`] on a code whose message mentions none.
pub const NO_VALUES: [(&str, &str); 0] = [];

impl Error {
    pub fn data(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Error::Data { file: file.to_string(), line, message: message.into(), code: None }
    }

    /// This data error with a stable [`Code`] and the values its message mentions. (Only data
    /// errors carry codes; other errors are returned unchanged.)
    pub fn with_code<V: ToString>(
        mut self,
        code: &'static str,
        values: impl IntoIterator<Item = (&'static str, V)>,
    ) -> Self {
        debug_assert!(matches!(self, Error::Data { .. }), "only data errors carry codes");
        if let Error::Data { code: slot, .. } = &mut self {
            let values = values.into_iter().map(|(k, v)| (k, v.to_string())).collect();
            *slot = Some(Code { code, values });
        }
        self
    }

    /// The error's code with every value the message mentions, the file and line included;
    /// `None` for errors without one (their message is all there is).
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Data { file, line, code: Some(code), .. } => {
                let mut code = code.clone();
                code.values.insert("file", file.clone());
                if let Some(line) = line {
                    code.values.insert("line", line.to_string());
                }
                Some(code)
            }
            _ => None,
        }
    }

    pub fn bundle(path: &str, message: impl Into<String>) -> Self {
        Error::Bundle { path: path.to_string(), message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Data { file, line: Some(line), message, .. } => write!(f, "{file}:{line}: {message}"),
            Error::Data { file, line: None, message, .. } => write!(f, "{file}: {message}"),
            Error::Bundle { path, message } => write!(f, "model bundle {path}: {message}"),
            Error::Invalid(message) => f.write_str(message),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
        }
    }
}

// The I/O cause is already part of the message, so no `source()`: printing the chain would
// repeat it.
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Encoding, ReadOptions, parse_records};

    fn code_of(name: &str, text: &[u8], options: &ReadOptions) -> &'static str {
        parse_records(name, text, options).unwrap_err().code().expect("the file reader's errors carry a code").code
    }

    #[test]
    fn file_errors_carry_a_stable_code_and_the_values_of_their_message() {
        let err = parse_records("r.csv", "title,score\n好,5\n".as_bytes(), &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().starts_with("r.csv:1: the header row needs a text column"), "{err}");
        let code = err.code().unwrap();
        assert_eq!(code.code, "no-text-column");
        assert_eq!(code.values["file"], "r.csv");
        assert_eq!(code.values["line"], "1");
        assert_eq!(code.values["found"], "title, score");
        assert!(code.values["columns"].starts_with("text, review, content"));
        let none = parse_records("r.txt", b"\n \n", &ReadOptions::default()).unwrap_err().code().unwrap();
        assert!(!none.values.contains_key("line"), "no line where the message names none");

        let default = ReadOptions::default();
        let with = |f: fn(&mut ReadOptions)| {
            let mut o = ReadOptions::default();
            f(&mut o);
            o
        };
        let gbk = encoding_rs::GB18030.encode("物流太慢了\n").0.into_owned();
        let mixed = [&gbk[..], "价格和配置都很满意\n".as_bytes()].concat();
        let cases: [(&str, &[u8], ReadOptions, &str); 20] = [
            ("a.xlsx", b"text\nx\n", default.clone(), "unknown-format"),
            ("a.txt", &mixed, default.clone(), "mixed-encodings"),
            ("a.txt", b"ok\n\xff\xff\xff\n", default.clone(), "not-utf8-or-gb18030"),
            ("a.txt", b"a\n\xff\n", with(|o| o.encoding = Encoding::Utf8), "not-in-encoding"),
            ("a.csv", b"PK\x03\x04\0\0", default.clone(), "binary-file"),
            ("a.txt", b"\n \n", default.clone(), "empty-file"),
            ("a.csv", b" \n", default.clone(), "empty-table"),
            ("a.tsv", b"text\n\n \n", default.clone(), "no-reviews"),
            ("a.csv", b"text,label\nx,1\n", with(|o| o.label_map = "0=negative".parse().unwrap()), "label-not-in-map"),
            ("a.csv", b"text,label\nx,1\n", with(|o| o.text_column = Some("body".into())), "no-text-column-named"),
            ("a.csv", b"text,label\nx,1\n", with(|o| o.label_column = Some("y".into())), "no-label-column-named"),
            ("a.tsv", b"label\ttext\nno tab\n", default.clone(), "tsv-columns"),
            ("a.csv", b"label,text\na,b,c\n", default.clone(), "malformed-csv"),
            ("a.jsonl", b"{\"label\": \n", default.clone(), "malformed-json"),
            ("a.jsonl", b"[1, 2]\n", default.clone(), "json-array-line"),
            ("a.jsonl", b"{\"data\": \"x\"}\n", default.clone(), "no-text-key"),
            ("a.jsonl", b"{\"data\": \"x\"}\n", with(|o| o.text_column = Some("body".into())), "no-text-key-named"),
            ("a.jsonl", b"{\"text\": 5}\n", default.clone(), "text-not-string"),
            ("a.jsonl", b"{\"text\": \"x\", \"label\": {\"a\": 1}}\n", default.clone(), "bad-label"),
            ("a.jsonl", b"{\"text\": \"x\", \"label\": [\"a\", \"b\"]}\n", default.clone(), "many-labels"),
        ];
        for (name, bytes, options, code) in cases {
            assert_eq!(code_of(name, bytes, &options), code, "{name} {:?}", String::from_utf8_lossy(bytes));
        }
        assert_eq!(Error::Invalid("no code".into()).code(), None);
    }
}
