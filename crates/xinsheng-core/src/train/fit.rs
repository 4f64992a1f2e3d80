//! The fit loop: epochs of [`Trainer`] steps as a resumable session that any
//! driver steps (synchronously with [`drive`], or asynchronously in the browser), validation
//! after each epoch, early stopping and the best weights kept.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

use super::{Encoded, Event, TrainOptions, Trainer, batches};
use crate::bundle::Bundle;
use crate::data::Example;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{SentimentModel, inference_batches};
use crate::rng::SplitMix64;

/// Class predicted for each example of `data` by an inference-mode model.
pub fn predict_classes(model: &SentimentModel, data: &Encoded, device: &Device) -> Vec<usize> {
    let mut predicted = vec![0; data.len()];
    for chunk in inference_batches(&data.ids) {
        let ids: Vec<Vec<usize>> = chunk.iter().map(|&i| data.ids[i].clone()).collect();
        let classes: Vec<i64> = model
            .forward(&model.batch(&ids, device))
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_into_vec()
            .expect("int classes");
        for (&i, &c) in chunk.iter().zip(&classes) {
            predicted[i] = c as usize;
        }
    }
    predicted
}

pub fn evaluate(model: &SentimentModel, data: &Encoded, labels: &[String], device: &Device) -> Metrics {
    Metrics::compute(labels, &data.labels, &predict_classes(model, data, device))
}

/// The model-selection rule: the mean of the validation sets' accuracies (argmax over all
/// labels), each set counting the same however many rows it has; `None` without validation
/// sets. With an in-domain set and a phenomena set, an epoch that gains on one and loses as
/// much on the other is no better.
pub fn selection_score(valid: &[Metrics]) -> Option<f64> {
    (!valid.is_empty()).then(|| valid.iter().map(|m| m.accuracy).sum::<f64>() / valid.len() as f64)
}

/// Result of [`fit`]: the best weights (by [`selection_score`], or the last without
/// validation data) on the plain device, and their metrics on each validation set.
pub struct Fitted {
    pub model: SentimentModel,
    pub valid: Vec<Metrics>,
    pub score: Option<f64>,
    pub epochs_run: usize,
}

/// Running mean loss and accuracy over the examples of an epoch so far, as progress reports
/// show them.
#[derive(Clone, Copy, Debug, Default)]
pub struct EpochTally {
    loss_sum: f64,
    correct: usize,
    seen: usize,
}

impl EpochTally {
    /// Adds one batch of `size` examples: its mean loss and how many it got right.
    pub fn add(&mut self, loss: f64, correct: usize, size: usize) {
        self.loss_sum += loss * size as f64;
        self.correct += correct;
        self.seen += size;
    }

    pub fn loss(&self) -> f64 {
        self.loss_sum / self.seen.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.seen.max(1) as f64
    }
}

/// The one fit loop, as a resumable session: the CLI, Python (through [`fit`]) and the browser
/// (asynchronously, yielding between steps) all drive it, so they train the same way for the
/// same options and seed. Per epoch: [`FitSession::step`] until it returns `None` (each step's
/// tensors read back by the driver, synchronously or not, and passed to
/// [`FitSession::record`]), then [`FitSession::end_epoch`], until [`FitSession::done`]; then
/// [`FitSession::finish`]. It keeps the epoch with the best [`selection_score`] over `valid`
/// and stops after `patience` epochs without a better one; without validation sets it runs
/// every epoch and keeps the last.
///
/// `end_epoch` evaluates the validation sets with synchronous reads, so a driver on WebGPU
/// (where those panic) gives none.
pub struct FitSession<'a> {
    trainer: Trainer,
    train: &'a Encoded,
    valid: &'a [Encoded],
    labels: &'a [String],
    options: TrainOptions,
    rng: SplitMix64,
    best: Option<(f64, SentimentModel, Vec<Metrics>)>,
    since_best: usize,
    /// The epoch under way (1-based), or the last one finished.
    epoch: usize,
    plan: Vec<Vec<usize>>,
    /// Steps of `plan` built so far.
    next: usize,
    tally: EpochTally,
    /// Between an epoch's first `step` and its `end_epoch`.
    in_epoch: bool,
    stopped: bool,
    /// The plain device the model came on (validation runs there).
    device: Device,
}

/// One step's results as tensors, for the driver to read back and [`FitSession::record`].
pub struct PendingStep {
    /// The batch's mean loss, `[1]`.
    pub loss: Tensor<1>,
    /// How many of the batch it got right, `[1]`.
    pub correct: Tensor<1, Int>,
    /// Examples in the batch.
    pub size: usize,
}

impl<'a> FitSession<'a> {
    /// Starts training `model` (on a plain device; training runs on its autodiff twin).
    /// Refuses options that cannot train ([`TrainOptions::validate`]) and empty training data.
    pub fn new(
        model: SentimentModel,
        train: &'a Encoded,
        valid: &'a [Encoded],
        labels: &'a [String],
        options: &TrainOptions,
    ) -> Result<Self> {
        options.validate()?;
        if train.is_empty() {
            return Err(Error::Invalid("training needs at least one example".into()));
        }
        // Seed before the trainer exists, so that dropout masks repeat for the same seed.
        let device = model.head.weight.device();
        device.seed(options.seed);
        let trainer = Trainer::with_distillation(model, options.lr, options.freeze, options.distill);
        Ok(FitSession {
            trainer,
            train,
            valid,
            labels,
            options: options.clone(),
            rng: SplitMix64::new(options.seed),
            best: None,
            since_best: 0,
            epoch: 0,
            plan: Vec::new(),
            next: 0,
            tally: EpochTally::default(),
            in_epoch: false,
            stopped: false,
            device,
        })
    }

    /// True once every epoch ran or early stopping ended training.
    pub fn done(&self) -> bool {
        self.stopped || (!self.in_epoch && self.epoch >= self.options.epochs)
    }

    /// The epoch under way (1-based) and the number planned.
    pub fn epoch(&self) -> (usize, usize) {
        (self.epoch, self.options.epochs)
    }

    /// Builds the next update of the epoch (planning the epoch's batches first, at its start);
    /// `None` when the epoch's batches are done and [`FitSession::end_epoch`] is due.
    pub fn step(&mut self) -> Option<PendingStep> {
        if !self.in_epoch {
            if self.done() {
                return None;
            }
            self.epoch += 1;
            self.plan = batches(self.train, self.options.batch_size, &mut self.rng);
            self.next = 0;
            self.tally = EpochTally::default();
            self.in_epoch = true;
        }
        if self.next >= self.plan.len() {
            return None;
        }
        let indices = &self.plan[self.next];
        self.next += 1;
        let (loss, correct) = self.trainer.step(self.train, indices);
        Some(PendingStep { loss, correct, size: indices.len() })
    }

    /// Adds a step's read-back loss and correct count to the epoch's tally; the report to show.
    pub fn record(&mut self, loss: f64, correct: usize, size: usize) -> Event {
        self.tally.add(loss, correct, size);
        Event::Batch {
            epoch: self.epoch,
            batch: self.next,
            batches: self.plan.len(),
            loss: self.tally.loss(),
            accuracy: self.tally.accuracy(),
        }
    }

    /// Ends the epoch: evaluates the validation sets, keeps the weights if they are the best so
    /// far, decides early stopping. Returns the epoch's report.
    pub fn end_epoch(&mut self) -> Event {
        let epoch = self.epoch;
        let current = self.trainer.model.valid();
        let metrics: Vec<Metrics> =
            self.valid.iter().map(|v| evaluate(&current, v, self.labels, &self.device)).collect();
        let score = selection_score(&metrics);
        let improved = self.best.as_ref().is_none_or(|(s, _, _)| score.unwrap_or(epoch as f64) > *s);
        if improved {
            self.best = Some((score.unwrap_or(epoch as f64), current, metrics.clone()));
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        if !self.valid.is_empty() && self.since_best >= self.options.patience {
            self.stopped = true;
        }
        // The next `step` plans the next epoch.
        self.in_epoch = false;
        Event::Epoch {
            epoch,
            train_loss: self.tally.loss(),
            train_accuracy: self.tally.accuracy(),
            valid: metrics,
            score,
            best: improved,
        }
    }

    /// The kept weights (on the plain device) and their validation metrics.
    pub fn finish(self) -> Fitted {
        let (_, model, valid) = self.best.unwrap_or_else(|| (0.0, self.trainer.model.valid(), Vec::new()));
        let score = selection_score(&valid);
        Fitted { model, valid, score, epochs_run: self.epoch }
    }
}

/// Drives a [`FitSession`] to the end with synchronous reads: what the CLI and Python run.
pub fn drive(mut session: FitSession<'_>, on_event: &mut dyn FnMut(Event)) -> Fitted {
    while !session.done() {
        while let Some(step) = session.step() {
            let loss = step.loss.into_scalar::<f32>() as f64;
            let correct = step.correct.into_scalar::<i64>() as usize;
            on_event(session.record(loss, correct, step.size));
        }
        on_event(session.end_epoch());
    }
    session.finish()
}

/// [`FitSession::new`] (errors there) driven to the end by [`drive`].
pub fn fit(
    model: SentimentModel,
    train: &Encoded,
    valid: &[Encoded],
    labels: &[String],
    options: &TrainOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<Fitted> {
    Ok(drive(FitSession::new(model, train, valid, labels, options)?, on_event))
}

/// `bundle` with the labels of `examples` it lacks appended to its label set; the head grows
/// and the old classes keep their weights. The new classes' weights are drawn after seeding the
/// model's device with `seed`, so that a fine-tune that adds labels is as reproducible as one
/// that does not.
pub fn with_labels_of<'a>(bundle: Bundle, examples: impl IntoIterator<Item = &'a Example>, seed: u64) -> Bundle {
    let Bundle { mut manifest, model } = bundle;
    let known = manifest.labels.len();
    for e in examples {
        if !manifest.labels.contains(&e.label) {
            manifest.labels.push(e.label.clone());
        }
    }
    manifest.config.num_classes = manifest.labels.len();
    if manifest.labels.len() > known {
        model.head.weight.device().seed(seed);
    }
    let model = model.grow_head(manifest.labels.len() - known);
    Bundle { manifest, model }
}
