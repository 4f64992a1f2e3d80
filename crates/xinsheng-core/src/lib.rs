//! The one implementation of xinsheng's pipeline, shared by the native trainer, the browser
//! engine and the Python binding. The map, in the order data flows:
//!
//! - text in: [`input`] (every file and text source: BOM, encodings, columns, blank rows),
//!   [`data`] (labelled examples and teacher files), [`tokenizer`] (normalisation and tokens),
//!   [`vocab`] (token ids);
//! - the model: [`arch`] (the recurrent cell kinds), [`recurrence`] (the fused recurrence and its
//!   CPU/WebGPU kernels), [`model`] (embedding → recurrence → pooling → head, batching);
//! - scores: [`scores`] (burn-free: argmax with one tie rule, softmax at a temperature),
//!   [`classifier`] (probabilities at the calibration temperature, labels, explanations),
//!   [`metrics`] (accuracy, macro-F1, confusion, figures on the data's own labels),
//!   [`calibration`] (temperature fitting, ECE);
//! - storage: [`bundle`] (the `.bpk` format and its manifest);
//! - learning: [`train`] (the encoded dataset, the loss with distillation, the fit loop as a
//!   resumable session, pretraining), [`recipe`] (`train`, `finetune` and `evaluate` as every
//!   driver calls them: read, check, fit, calibrate, record);
//! - shared: [`error`], [`rng`], [`schema`] (named choices and option sets: one list of
//!   names, one way to lay a driver's options over the defaults).

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
pub mod schema;
pub mod scores;
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
