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

