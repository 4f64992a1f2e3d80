//! Training and fine-tuning: Adam on cross-entropy (with distillation from a teacher's
//! probabilities), validation after every epoch, early stopping, the best weights kept.
//! Progress goes to a callback so the CLI can draw bars and the browser can draw charts.
//!
//! - this file: the options ([`TrainOptions`], [`Freeze`]) and the progress [`Event`]s;
//! - [`dataset`]: texts as ids ([`Encoded`]), the teacher's rows attached, [`batches`];
//! - [`loss`]: the loss ([`Distillation`]) and one optimiser step ([`Trainer`]);
//! - [`fit`](mod@fit): the fit loop as a resumable session ([`FitSession`], [`drive`], [`fit()`]),
//!   evaluation and model selection;
//! - [`pretrain`](mod@pretrain): language-model pretraining of the encoder.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::Metrics;

pub mod dataset;
pub mod fit;
pub mod loss;
pub mod pretrain;

pub use dataset::{Encoded, TeacherMatch, attach_teacher, batches};
pub use fit::{
    EpochTally, FitSession, Fitted, PendingStep, drive, evaluate, fit, predict_classes, selection_score, with_labels_of,
};
pub use loss::{Distillation, Trainer};
pub use pretrain::{LanguageModel, pretrain};

/// Which parameters fine-tuning leaves untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Freeze {
    #[default]
    None,
    Embedding,
    /// Embedding and recurrent layers: only the classifier head learns.
    Encoder,
}

crate::schema::choice!(Freeze, "freeze", [None => "none", Embedding => "embedding", Encoder => "encoder"]);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(with = "crate::schema::number")]
    pub lr: f64,
    pub seed: u64,
    /// Stop after this many epochs without a better validation accuracy.
    pub patience: usize,
    pub freeze: Freeze,
    /// Knowledge distillation from the teacher probabilities in [`Encoded::teacher`]. Left out
    /// of the serialised options when it is the default, so a fine-tune's schema (which has no
    /// teacher) is the other six options and `distill` is refused there as unknown.
    #[serde(default, skip_serializing_if = "Distillation::is_default")]
    pub distill: Distillation,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 10,
            batch_size: 64,
            lr: 2e-3,
            seed: 42,
            patience: 3,
            freeze: Freeze::None,
            distill: Distillation::default(),
        }
    }
}

impl TrainOptions {
    /// Refuses options that cannot train: no epochs, empty batches, a learning rate that is not
    /// a finite number above 0 (NaN, ±∞, 0 or negative would write a model of NaN or untrained
    /// weights), no patience, or a bad distillation. Every driver (the CLI, Python, the browser)
    /// reaches this through [`fit()`]'s callers or calls it itself, so the messages are worded
    /// here once.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::Invalid("epochs must be at least 1, got 0".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::Invalid("the batch size must be at least 1, got 0".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Invalid(format!(
                "the learning rate (lr) must be a finite number above 0, got {}",
                self.lr
            )));
        }
        if self.patience == 0 {
            return Err(Error::Invalid(
                "patience must be at least 1, got 0 (it counts epochs without a better validation accuracy)".into(),
            ));
        }
        self.distill.validate().map_err(Error::Invalid)
    }
}

/// Progress reports, in order: many `Batch`es, then one `Epoch`, per epoch.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    Batch {
        epoch: usize,
        batch: usize,
        batches: usize,
        loss: f64,
        accuracy: f64,
    },
    Epoch {
        epoch: usize,
        train_loss: f64,
        train_accuracy: f64,
        /// Metrics on each validation set, in the order given (empty without validation data).
        valid: Vec<Metrics>,
        /// [`selection_score`] of `valid`: what picks the epoch kept.
        score: Option<f64>,
        best: bool,
    },
    /// Language-model pretraining: mean next-token loss so far in this epoch.
    Pretrain {
        epoch: usize,
        batch: usize,
        batches: usize,
        loss: f64,
    },
}
