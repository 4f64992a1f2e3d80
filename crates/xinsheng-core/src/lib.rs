//! The one implementation of xinsheng's pipeline, shared by the native trainer and the browser:
//! text → tokens ([`tokenizer`]) → ids ([`vocab`]) → recurrent model ([`model`]) → probabilities
//! ([`classifier`]), plus the bundle format ([`bundle`]), datasets ([`data`]), training
//! ([`train`]) and metrics ([`metrics`]).

pub mod arch;
pub mod bundle;
pub mod calibration;
pub mod classifier;
pub mod data;
pub mod error;
pub mod input;
pub mod metrics;
pub mod model;
pub mod recipe;
pub mod recurrence;
pub mod rng;
pub mod tokenizer;
pub mod train;
pub mod vocab;

pub use bundle::{Bundle, Manifest, Precision};
pub use classifier::{Classifier, Prediction};
pub use data::{Example, read_examples};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use model::{Arch, ModelConfig, Pooling, Recurrence, SentimentModel};
pub use tokenizer::{Tokenizer, TokenizerKind};
pub use vocab::Vocab;
