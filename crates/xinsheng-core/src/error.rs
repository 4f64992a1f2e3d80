use std::fmt;

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

impl Error {
    pub fn data(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Error::Data { file: file.to_string(), line, message: message.into() }
    }

    pub fn bundle(path: &str, message: impl Into<String>) -> Self {
        Error::Bundle { path: path.to_string(), message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Data { file, line: Some(line), message } => write!(f, "{file}:{line}: {message}"),
            Error::Data { file, line: None, message } => write!(f, "{file}: {message}"),
            Error::Bundle { path, message } => write!(f, "model bundle {path}: {message}"),
            Error::Invalid(message) => f.write_str(message),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
        }
    }
}

// The I/O cause is already part of the message, so no `source()`: printing the chain would
// repeat it.
impl std::error::Error for Error {}
