//! Training and fine-tuning: Adam on cross-entropy, validation after every epoch, early
//! stopping, the best weights kept. Progress goes to a callback so the CLI can draw bars and
//! the browser can draw charts.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::nn::{Linear, LinearConfig};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::data::{Example, TeacherRow};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{SentimentModel, inference_batches};
use crate::rng::SplitMix64;
use crate::vocab::{PAD_ID, UNK_ID};

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
    /// reaches this through [`fit`]'s callers or calls it itself, so the messages are worded
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

/// How much the teacher's probabilities count (Hinton et al., 2015, "Distilling the Knowledge
/// in a Neural Network"). Per example,
/// `loss = α · T² · KL(teacher ‖ softmax(logits / T)) + (1 − α) · cross-entropy(gold)`;
/// an example without a gold label (a transfer text) keeps only the first term, one without
/// teacher probabilities only the cross-entropy (with weight 1). The batch loss is the mean.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distillation {
    /// α, the teacher term's weight, in [0, 1].
    #[serde(with = "crate::schema::number")]
    pub weight: f64,
    /// T, the distillation temperature (> 0): above 1 softens both distributions.
    #[serde(with = "crate::schema::number")]
    pub temperature: f64,
}

impl Default for Distillation {
    fn default() -> Self {
        Distillation { weight: 0.5, temperature: 1.0 }
    }
}

impl Distillation {
    pub fn is_default(&self) -> bool {
        *self == Distillation::default()
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(format!("the distillation weight must be in [0, 1], got {}", self.weight));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!("the distillation temperature must be positive, got {}", self.temperature));
        }
        Ok(())
    }
}

/// Texts already turned into ids, with class indices and, for distillation, the teacher's
/// probabilities.
#[derive(Clone, Debug, Default)]
pub struct Encoded {
    pub ids: Vec<Vec<usize>>,
    /// The gold class of each example; for an example without one (see `gold`), the
    /// teacher's most probable class, used only for the running accuracy.
    pub labels: Vec<usize>,
    /// Per example, the teacher's probability of each class (in label order), or an empty
    /// list where the teacher gave none. Empty altogether without distillation.
    pub teacher: Vec<Vec<f32>>,
    /// Per example, whether `labels` holds a gold label. Empty means all do.
    pub gold: Vec<bool>,
}

impl Encoded {
    /// Encodes `examples` with `encode`; every label must be in `labels`.
    pub fn new(
        encode: &dyn Fn(&str) -> Vec<usize>,
        labels: &[String],
        examples: &[Example],
        source: &str,
    ) -> Result<Encoded> {
        Encoded::with_ids(examples.iter().map(|e| encode(&e.text)).collect(), labels, examples, source)
    }

    /// Pairs `ids` (one list per example, already encoded) with the examples' classes.
    pub fn with_ids(ids: Vec<Vec<usize>>, labels: &[String], examples: &[Example], source: &str) -> Result<Encoded> {
        let classes = examples
            .iter()
            .map(|e| {
                labels.iter().position(|l| *l == e.label).ok_or_else(|| {
                    Error::data(
                        source,
                        None,
                        format!("label '{}' is not one of the model's labels {:?}", e.label, labels),
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        Ok(Encoded { ids, labels: classes, ..Encoded::default() })
    }

    /// Attaches teacher probabilities, one list per example (empty where there is none).
    pub fn with_teacher(mut self, teacher: Vec<Vec<f32>>) -> Encoded {
        assert_eq!(teacher.len(), self.len(), "one teacher entry per example");
        self.teacher = teacher;
        self
    }

    /// Appends examples known only through the teacher (no gold label), such as augmented
    /// transfer texts: `probs` in label order.
    pub fn push_teacher_only(&mut self, ids: Vec<usize>, probs: Vec<f32>) {
        let n = self.len();
        if self.teacher.is_empty() {
            self.teacher = vec![Vec::new(); n];
        }
        if self.gold.is_empty() {
            self.gold = vec![true; n];
        }
        self.ids.push(ids);
        self.labels.push(crate::scores::argmax(&probs));
        self.teacher.push(probs);
        self.gold.push(false);
    }

    fn is_gold(&self, i: usize) -> bool {
        self.gold.get(i).copied().unwrap_or(true)
    }

    fn teacher_of(&self, i: usize) -> Option<&[f32]> {
        self.teacher.get(i).filter(|p| !p.is_empty()).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// What [`attach_teacher`] did with a teacher's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TeacherMatch {
    /// Training examples that got the teacher's probabilities.
    pub matched: usize,
    /// Training examples the teacher did not score (trained on cross-entropy alone).
    pub unmatched: usize,
    /// Teacher rows added as examples without a gold label (transfer texts).
    pub transfer: usize,
    /// Teacher rows skipped because their text is a validation text.
    pub held_out: usize,
    /// Teacher rows skipped because an earlier row had the same text.
    pub duplicates: usize,
}

/// Adds a teacher's probabilities to `train` (encoded from `examples`, in order): a row whose
/// text is a training text gives that example its probabilities; any other row becomes an
/// example with no gold label (a transfer text), except a text of `held_out` (validation
/// data), which is skipped so that validation stays unseen. Texts are matched exactly.
pub fn attach_teacher(
    mut train: Encoded,
    examples: &[Example],
    rows: &[TeacherRow],
    held_out: &[Example],
    encode: &dyn Fn(&str) -> Vec<usize>,
) -> (Encoded, TeacherMatch) {
    use std::collections::{HashMap, HashSet};
    let mut by_text: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in examples.iter().enumerate() {
        by_text.entry(e.text.as_str()).or_default().push(i);
    }
    let held_out: HashSet<&str> = held_out.iter().map(|e| e.text.as_str()).collect();
    let mut teacher = vec![Vec::new(); train.len()];
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stats = TeacherMatch::default();
    let mut transfer = Vec::new();
    for row in rows {
        if !seen.insert(row.text.as_str()) {
            stats.duplicates += 1;
        } else if let Some(indices) = by_text.get(row.text.as_str()) {
            for &i in indices {
                teacher[i] = row.probs.clone();
            }
        } else if held_out.contains(row.text.as_str()) {
            stats.held_out += 1;
        } else {
            transfer.push(row);
        }
    }
    stats.matched = teacher.iter().filter(|p| !p.is_empty()).count();
    stats.unmatched = train.len() - stats.matched;
    stats.transfer = transfer.len();
    train = train.with_teacher(teacher);
    for row in transfer {
        train.push_teacher_only(encode(&row.text), row.probs.clone());
    }
    (train, stats)
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

/// Batches of example indices: shuffled, then grouped by similar length so little compute goes
/// into padding, then the batch order shuffled again.
pub fn batches(data: &Encoded, batch_size: usize, rng: &mut SplitMix64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..data.len()).collect();
    rng.shuffle(&mut order);
    let pool = batch_size.max(1) * 32;
    for chunk in order.chunks_mut(pool) {
        chunk.sort_by_key(|&i| data.ids[i].len());
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect();
    rng.shuffle(&mut batches);
    batches
}

/// One optimiser with the model it updates. `step` only builds tensors, so the caller decides
/// how to read them back (synchronously here, asynchronously in the browser).
pub struct Trainer {
    pub model: SentimentModel,
    optim: ModuleOptimizer,
    lr: f64,
    distill: Distillation,
    device: Device,
}

impl Trainer {
    /// Trains `model` (given on a plain device) on that device's autodiff twin.
    pub fn new(model: SentimentModel, lr: f64, freeze: Freeze) -> Self {
        Trainer::with_distillation(model, lr, freeze, Distillation::default())
    }

    /// [`Trainer::new`] with the weights of the teacher term (used when the data carries
    /// teacher probabilities).
    pub fn with_distillation(model: SentimentModel, lr: f64, freeze: Freeze, distill: Distillation) -> Self {
        let device = model.head.weight.device().autodiff();
        let mut model = model.to_device(&device).train();
        if matches!(freeze, Freeze::Embedding | Freeze::Encoder) {
            model.embedding = model.embedding.no_grad();
        }
        if freeze == Freeze::Encoder {
            model.layers = model.layers.into_iter().map(|l| l.no_grad()).collect();
        }
        let optim = AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(5.0))).init();
        Trainer { model, optim, lr, distill, device }
    }

    /// One update on the examples `indices` of `data`; returns the mean loss and the number
    /// of correct predictions, still as tensors.
    pub fn step(&mut self, data: &Encoded, indices: &[usize]) -> (Tensor<1>, Tensor<1, Int>) {
        let ids: Vec<Vec<usize>> = indices.iter().map(|&i| data.ids[i].clone()).collect();
        let targets: Vec<i64> = indices.iter().map(|&i| data.labels[i] as i64).collect();
        let batch = self.model.batch(&ids, &self.device);
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [indices.len()]), &self.device);
        let logits = self.model.forward(&batch);
        let correct = logits.clone().argmax(1).squeeze_dim::<1>(1).equal(targets.clone()).int().sum();
        let distilling = indices.iter().any(|&i| data.teacher_of(i).is_some() || !data.is_gold(i));
        let loss = if distilling {
            self.distillation_loss(data, indices, logits)
        } else {
            CrossEntropyLoss::new(None, &self.device).forward(logits, targets)
        };
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(self.lr, self.model.clone(), grads);
        (loss.detach(), correct)
    }

    /// The mean over the batch of `α · T² · KL(teacher_T ‖ softmax(logits / T)) + (1 − α) · CE`
    /// (see [`Distillation`]; `teacher_T` is the teacher softened by the same T), as
    /// `-Σ (ce_target · log p + kd_target · log p_T) / n + constant` where both targets are built on the host: the one-hot gold class weighted by its
    /// cross-entropy weight, and the teacher's probabilities weighted by `α · T²`. The
    /// constant (the teacher's entropy term) makes the value a true KL; it has no gradient.
    fn distillation_loss(&self, data: &Encoded, indices: &[usize], logits: Tensor<2>) -> Tensor<1> {
        let [n, classes] = logits.dims();
        let Distillation { weight: alpha, temperature: t } = self.distill;
        let mut ce_target = vec![0f32; n * classes];
        let mut kd_target = vec![0f32; n * classes];
        let mut constant = 0f64;
        for (row, &i) in indices.iter().enumerate() {
            let teacher = data.teacher_of(i);
            let kd_weight = if teacher.is_some() { alpha * t * t } else { 0.0 };
            let ce_weight = match (data.is_gold(i), teacher.is_some()) {
                (false, _) => 0.0,
                (true, true) => 1.0 - alpha,
                (true, false) => 1.0,
            };
            ce_target[row * classes + data.labels[i]] = ce_weight as f32;
            for (c, p) in soften(teacher.unwrap_or(&[]), t).into_iter().enumerate().take(classes) {
                kd_target[row * classes + c] = (kd_weight * p) as f32;
                if p > 0.0 {
                    constant += kd_weight * p * p.ln();
                }
            }
        }
        let target = |values: Vec<f32>| Tensor::<2>::from_data(TensorData::new(values, [n, classes]), &self.device);
        let ce = (target(ce_target) * log_softmax(logits.clone(), 1)).sum();
        let kd = (target(kd_target) * log_softmax(logits / t, 1)).sum();
        (ce + kd).neg() / n as f64 + constant / n as f64
    }
}

/// A distribution softened by temperature `t`, as if its logits were divided by `t`:
/// `p_i^(1/t) / Σ_j p_j^(1/t)`. Zero probabilities stay zero.
fn soften(probs: &[f32], t: f64) -> Vec<f64> {
    let powered: Vec<f64> = probs.iter().map(|&p| if p > 0.0 { (p as f64).powf(1.0 / t) } else { 0.0 }).collect();
    let sum: f64 = powered.iter().sum();
    powered.into_iter().map(|p| if sum > 0.0 { p / sum } else { 0.0 }).collect()
}

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

/// The encoder with a next-token head, for ULMFiT-style pretraining on unlabelled text.
#[derive(Module, Debug)]
pub struct LanguageModel {
    pub encoder: SentimentModel,
    head: Linear,
}

/// Next-token (forward direction) and previous-token (backward direction) targets for the
/// steps of one time-major batch, flattened like `Tensor::cat` of the steps. Tokens outside
/// the `lm_vocab` most frequent become `<unk>`; steps past a text's end are padding, ignored.
fn shifted_targets(ids: &[Vec<usize>], time: usize, shift: isize, lm_vocab: usize) -> Vec<i64> {
    let steps: Vec<usize> = if shift > 0 { (0..time - 1).collect() } else { (1..time).collect() };
    let mut out = Vec::with_capacity(steps.len() * ids.len());
    for t in steps {
        for seq in ids {
            let target = t as isize + shift;
            let id = if (t as isize) < seq.len() as isize && target >= 0 {
                seq.get(target as usize).copied().unwrap_or(PAD_ID)
            } else {
                PAD_ID
            };
            out.push(if id >= lm_vocab { UNK_ID } else { id } as i64);
        }
    }
    out
}

/// Pretrains `model`'s embedding and recurrent layers as a language model on `texts` (their
/// labels are ignored) and returns it with its classifier head untouched.
pub fn pretrain(
    model: SentimentModel,
    texts: &Encoded,
    lm_vocab: usize,
    options: &TrainOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<SentimentModel> {
    options.validate()?;
    if !model.supports_language_model() {
        return Err(Error::Invalid("language-model pretraining needs --layers 1 or a unidirectional model".into()));
    }
    let device = model.head.weight.device();
    let autodiff = device.clone().autodiff();
    device.seed(options.seed);
    let hidden = model.hidden_size();
    let mut lm = LanguageModel { encoder: model, head: LinearConfig::new(hidden, lm_vocab).init(&device) }
        .to_device(&autodiff)
        .train();
    let mut optim = AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(5.0))).init();
    let mut rng = SplitMix64::new(options.seed ^ 0x5eed);
    let long_enough: Vec<usize> = (0..texts.len()).filter(|&i| texts.ids[i].len() >= 2).collect();
    let data = Encoded {
        ids: long_enough.iter().map(|&i| texts.ids[i].clone()).collect(),
        labels: vec![0; long_enough.len()],
        ..Encoded::default()
    };
    let loss_fn = CrossEntropyLoss::new(Some(PAD_ID), &autodiff);
    for epoch in 1..=options.epochs {
        let plan = batches(&data, options.batch_size, &mut rng);
        let mut loss_sum = 0.0;
        for (b, indices) in plan.iter().enumerate() {
            let ids: Vec<Vec<usize>> = indices.iter().map(|&i| data.ids[i].clone()).collect();
            let batch = lm.encoder.batch(&ids, &autodiff);
            let [time, _] = batch.tokens.dims();
            let (forward, backward) = lm.encoder.language_model_states(&batch);
            // States of steps [from, from + time - 1) as rows, time-major like the targets.
            let rows = |states: Tensor<3>, from: usize| {
                let [_, size, dim] = states.dims();
                states.slice([from..from + time - 1, 0..size, 0..dim]).reshape([(time - 1) * size, dim])
            };
            let mut directions = vec![(rows(forward, 0), shifted_targets(&ids, time, 1, lm_vocab))];
            if let Some(backward) = backward {
                directions.push((rows(backward, 1), shifted_targets(&ids, time, -1, lm_vocab)));
            }
            let count = directions.len() as f64;
            let loss = directions
                .into_iter()
                .map(|(states, targets)| {
                    let n = targets.len();
                    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &autodiff);
                    loss_fn.forward(lm.head.forward(states), targets)
                })
                .reduce(|a, b| a + b)
                .expect("at least the forward direction")
                / count;
            let grads = GradientsParams::from_grads(loss.backward(), &lm);
            lm = optim.step(options.lr, lm, grads);
            loss_sum += loss.into_scalar::<f32>() as f64;
            on_event(Event::Pretrain { epoch, batch: b + 1, batches: plan.len(), loss: loss_sum / (b + 1) as f64 });
        }
    }
    Ok(lm.valid().encoder)
}
