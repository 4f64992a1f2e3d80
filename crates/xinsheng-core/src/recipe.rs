//! `xinsheng train` and `xinsheng finetune` as library calls: read the files, check the labels,
//! build the vocabulary and model, train, calibrate. The command line and the Python package
//! both call these, so a model trained either way is the same model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::bundle::{Bundle, Manifest};
use crate::calibration::{Calibration, calibrate_logits};
use crate::classifier::Classifier;
use crate::data::{Dataset, Example, new_labels, read_examples_with, read_teacher};
use crate::error::{Error, Result};
use crate::input::ReadOptions;
use crate::metrics::Metrics;
use crate::model::{Arch, ModelConfig, Pooling, SentimentModel, logits_of};
use crate::schema::{Spelling, overlay};
use crate::tokenizer::{Tokenizer, TokenizerKind};
use crate::train::{
    Distillation, Encoded, Event, FitSession, Fitted, Freeze, TrainOptions, attach_teacher, drive, pretrain,
    with_labels_of,
};
use crate::vocab::{Bigrams, Vocab, encode, encode_tokens};

/// Everything `xinsheng train` takes, with its defaults ([`TrainSpec::default`] is the one
/// source of them: the CLI's and the Python package's defaults read it). Its serde names are
/// the options' names everywhere (`--batch-size`, `batch_size=`); drivers lay their options
/// over the defaults with [`crate::schema::overlay`] instead of mapping fields by hand.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSpec {
    /// Labelled training files (.tsv, .csv, .jsonl), trained on together.
    pub data: Vec<PathBuf>,
    /// Validation files for early stopping, model selection and calibration. The epoch kept is
    /// the one with the best [`crate::train::selection_score`] (the mean of the files' accuracies); the
    /// temperature is fitted on all of them together; the bundle's metrics are the first file's.
    pub valid: Vec<PathBuf>,
    /// Teacher probability files to distil (see [`read_teacher`]).
    pub teacher: Vec<PathBuf>,
    /// How the data files are read (its fields are options of their own: `encoding`, `format`, …).
    #[serde(flatten)]
    pub read: ReadOptions,
    pub arch: Arch,
    pub bidirectional: bool,
    pub tokenizer: TokenizerKind,
    pub embed_dim: usize,
    pub hidden: usize,
    pub layers: usize,
    #[serde(with = "crate::schema::number")]
    pub dropout: f64,
    /// Tokens kept per text.
    pub max_len: usize,
    /// Largest vocabulary, special tokens included.
    pub vocab_size: usize,
    /// Size of the bigram channel (0: none).
    pub bigrams: usize,
    pub bigram_dim: usize,
    /// Tokens seen fewer times map to `<unk>`.
    pub min_freq: usize,
    pub epochs: usize,
    /// Epochs of language-model pretraining before classification (0: none).
    pub pretrain_epochs: usize,
    pub lm_vocab: usize,
    pub batch_size: usize,
    #[serde(with = "crate::schema::number")]
    pub lr: f64,
    pub patience: usize,
    pub seed: u64,
    pub pooling: Pooling,
    /// α of the teacher term (needs `teacher`); default 0.5.
    #[serde(with = "crate::schema::number::option")]
    pub distill_weight: Option<f64>,
    /// The distillation temperature T (needs `teacher`); default 1.
    #[serde(with = "crate::schema::number::option")]
    pub temperature: Option<f64>,
}

impl Default for TrainSpec {
    fn default() -> Self {
        // The optimiser's defaults are TrainOptions's; the rest are the model's and the data's.
        let o = TrainOptions::default();
        TrainSpec {
            data: Vec::new(),
            valid: Vec::new(),
            teacher: Vec::new(),
            read: ReadOptions::default(),
            arch: Arch::Lstm,
            bidirectional: false,
            tokenizer: TokenizerKind::Char,
            embed_dim: 128,
            hidden: 128,
            layers: 1,
            dropout: 0.3,
            max_len: 160,
            vocab_size: 6000,
            bigrams: 0,
            bigram_dim: 64,
            min_freq: 2,
            epochs: o.epochs,
            pretrain_epochs: 0,
            lm_vocab: 3000,
            batch_size: o.batch_size,
            lr: o.lr,
            patience: o.patience,
            seed: o.seed,
            pooling: Pooling::MeanMax,
            distill_weight: None,
            temperature: None,
        }
    }
}

impl TrainSpec {
    /// The optimiser's options: epochs, batches, learning rate, patience, seed and distillation
    /// (α and T at their defaults where not given).
    pub fn options(&self) -> TrainOptions {
        let defaults = Distillation::default();
        TrainOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            patience: self.patience,
            freeze: Freeze::None,
            distill: Distillation {
                weight: self.distill_weight.unwrap_or(defaults.weight),
                temperature: self.temperature.unwrap_or(defaults.temperature),
            },
        }
    }

    /// Refuses a spec that cannot train before any file is read: no data, distillation options
    /// without a teacher, bad training options ([`TrainOptions::validate`]) or a model shape
    /// that cannot be built ([`ModelConfig::validate`]). [`train`] calls it first; a driver may
    /// call it earlier, before it prepares anything else.
    pub fn validate(&self) -> Result<()> {
        if self.data.is_empty() {
            return Err(Error::Invalid("training needs at least one data file".into()));
        }
        if self.teacher.is_empty() && (self.distill_weight.is_some() || self.temperature.is_some()) {
            return Err(Error::Invalid(
                "the distillation weight and temperature weigh the teacher term: give a teacher file (--teacher) too"
                    .into(),
            ));
        }
        self.options().validate()?;
        if self.max_len == 0 {
            return Err(Error::Invalid("max_len (tokens kept per text) must be at least 1, got 0".into()));
        }
        // The tokens <pad> and <unk> come first: a vocabulary needs room for one more.
        for (name, value, applies) in
            [("vocab size", self.vocab_size, true), ("lm_vocab", self.lm_vocab, self.pretrain_epochs > 0)]
        {
            if applies && value < 3 {
                return Err(Error::Invalid(format!(
                    "{name} must be at least 3 (<pad>, <unk> and one token), got {value}"
                )));
            }
        }
        // The shape as the bundle will have it; the data decides the vocabulary, the classes
        // and the bigrams, so those are placeholders here.
        ModelConfig {
            arch: self.arch,
            bidirectional: self.bidirectional,
            vocab_size: self.vocab_size,
            embed_dim: self.embed_dim,
            hidden: self.hidden,
            layers: self.layers,
            dropout: self.dropout,
            num_classes: 2,
            bigram_vocab_size: self.bigrams,
            bigram_dim: self.bigram_dim,
            pooling: self.pooling,
        }
        .validate()
        .map_err(Error::Invalid)
    }
}

/// Reads one labelled file, reporting skipped empty rows through `log`.
pub fn load_dataset(path: &Path, read: &ReadOptions, log: &mut dyn FnMut(String)) -> Result<Dataset> {
    let name = path.display().to_string();
    let data = read_examples_with(&name, read)?;
    if data.skipped_empty > 0 {
        log(format!("warning: {name}: skipped {} rows with empty text", data.skipped_empty));
    }
    Ok(data)
}

/// The file names, joined for messages.
fn names(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" + ")
}

/// Trains a model as `xinsheng train` does and returns its bundle (not yet saved), with
/// `manifest.training` recording the data, options and calibration. Progress goes to
/// `on_event`, one-line reports (data summary, teacher match, calibration) to `log`.
///
/// Errors: unreadable or malformed files ([`Error::Data`], [`Error::Io`]), fewer than two
/// labels, validation labels the training data lacks, and options that cannot train
/// ([`TrainSpec::validate`]; [`Error::Invalid`]).
pub fn train(
    spec: &TrainSpec,
    device: &Device,
    on_event: &mut dyn FnMut(Event),
    log: &mut dyn FnMut(String),
) -> Result<Bundle> {
    let started = Instant::now();
    spec.validate()?;
    let options = spec.options();
    let distill = options.distill;
    let mut train_data = Dataset::default();
    for path in &spec.data {
        let part = load_dataset(path, &spec.read, log)?;
        train_data.examples.extend(part.examples);
        train_data.lines.extend(part.lines);
    }
    let valid_data = spec.valid.iter().map(|p| load_dataset(p, &spec.read, log)).collect::<Result<Vec<_>>>()?;
    let mut labels = train_data.labels();
    labels.sort();
    if labels.len() < 2 {
        return Err(Error::Invalid(format!(
            "{}: a classifier needs at least 2 labels, found {:?}",
            names(&spec.data),
            labels
        )));
    }
    for (path, valid) in spec.valid.iter().zip(&valid_data) {
        valid.check_labels(&path.display().to_string(), &labels)?;
    }
    let valid_examples: Vec<Example> = valid_data.iter().flat_map(|v| v.examples.iter().cloned()).collect();

    let tokenizer = Tokenizer::new(spec.tokenizer, spec.max_len);
    let tokens: Vec<Vec<String>> = train_data.examples.iter().map(|e| tokenizer.tokenize(&e.text)).collect();
    let vocab = Vocab::build(tokens.iter().map(Vec::as_slice), spec.min_freq, spec.vocab_size);
    let train_ids = tokens.iter().map(|t| encode_tokens(&vocab, t)).collect();
    let mut train_set = Encoded::with_ids(train_ids, &labels, &train_data.examples, &names(&spec.data))?;
    let encode = |t: &str| encode(&tokenizer, &vocab, t);
    let mut teacher_rows = Vec::new();
    for path in &spec.teacher {
        teacher_rows.extend(read_teacher(&path.display().to_string(), &labels)?);
    }
    let teacher_match = (!spec.teacher.is_empty()).then(|| {
        let (set, stats) =
            attach_teacher(train_set.clone(), &train_data.examples, &teacher_rows, &valid_examples, &encode);
        train_set = set;
        log(format!(
            "teacher: {} training examples matched, {} not scored by the teacher, {} transfer texts added \
             ({} validation texts and {} duplicates skipped); α {}, T {}",
            stats.matched,
            stats.unmatched,
            stats.transfer,
            stats.held_out,
            stats.duplicates,
            distill.weight,
            distill.temperature
        ));
        stats
    });
    let valid_sets = valid_data
        .iter()
        .zip(&spec.valid)
        .map(|(v, path)| Encoded::new(&encode, &labels, &v.examples, &path.display().to_string()))
        .collect::<Result<Vec<_>>>()?;
    let bigrams = (spec.bigrams > 0)
        .then(|| Bigrams::build(train_set.ids.iter().map(Vec::as_slice), spec.min_freq, spec.bigrams));
    let config = ModelConfig {
        arch: spec.arch,
        bidirectional: spec.bidirectional,
        vocab_size: vocab.len(),
        embed_dim: spec.embed_dim,
        hidden: spec.hidden,
        layers: spec.layers,
        dropout: spec.dropout,
        num_classes: labels.len(),
        bigram_vocab_size: bigrams.as_ref().map_or(0, Bigrams::len),
        bigram_dim: spec.bigram_dim,
        pooling: spec.pooling,
    };
    config.validate().map_err(Error::Invalid)?;
    log(format!(
        "{} training examples, {} labels ({}), vocabulary {} {} tokens{}; {}{} x{} hidden {}",
        train_data.examples.len(),
        labels.len(),
        labels.join(", "),
        vocab.len(),
        spec.tokenizer,
        bigrams.as_ref().map_or(String::new(), |b| format!(" + {} bigrams", b.len())),
        if spec.bidirectional { "bi-" } else { "" },
        spec.arch,
        spec.layers,
        spec.hidden
    ));

    // Seed before initialising so that the same spec gives the same model.
    device.seed(spec.seed);
    let model = config.init(device).with_bigrams(bigrams.clone());
    let mut manifest = Manifest::new(config.clone(), tokenizer, labels.clone(), vocab.clone());
    manifest.bigrams = bigrams;
    let model = if spec.pretrain_epochs > 0 {
        let lm_options = TrainOptions { epochs: spec.pretrain_epochs, ..options.clone() };
        pretrain(model, &train_set, spec.lm_vocab.min(config.vocab_size), &lm_options, on_event)?
    } else {
        model
    };
    let fitted = drive(FitSession::new(model, &train_set, &valid_sets, &labels, &options)?, on_event);

    manifest.metrics = fitted.valid.first().cloned();
    let selection = (!fitted.valid.is_empty()).then(|| {
        serde_json::json!({
            "rule": SELECTION_RULE,
            "score": fitted.score,
            "accuracy": paths(&spec.valid).into_iter().zip(&fitted.valid)
                .map(|(p, m)| (p, serde_json::json!(m.accuracy))).collect::<serde_json::Map<_, _>>(),
        })
    });
    let mut bundle = Bundle { manifest, model: fitted.model };
    // One temperature for every validation row: the sets already encoded above, end to end.
    let calibration = (!valid_examples.is_empty()).then(|| {
        let all = Encoded {
            ids: valid_sets.iter().flat_map(|v| v.ids.iter().cloned()).collect(),
            labels: valid_sets.iter().flat_map(|v| v.labels.iter().copied()).collect(),
            teacher: Vec::new(),
            gold: Vec::new(),
        };
        let c = calibrate(&mut bundle, &all, device);
        log(calibration_line(&c));
        c
    });
    bundle.manifest.training = serde_json::json!({
        "data": paths(&spec.data),
        "valid": paths(&spec.valid),
        "selection": selection,
        "teacher": paths(&spec.teacher),
        "teacher_match": teacher_match,
        "calibration": calibration,
        "options": options,
        "min_freq": spec.min_freq,
        "bigrams": spec.bigrams,
        "pretrain_epochs": spec.pretrain_epochs,
        "lm_vocab": spec.lm_vocab,
        "epochs_run": fitted.epochs_run,
        "seconds": started.elapsed().as_secs_f64().round(),
    });
    Ok(bundle)
}

/// How [`train`] picks the epoch it keeps, as the bundle's manifest records it.
pub const SELECTION_RULE: &str =
    "the epoch with the best mean of the validation files' accuracies (argmax over all labels)";

fn paths(p: &[PathBuf]) -> Vec<String> {
    p.iter().map(|p| p.display().to_string()).collect()
}

/// One line on what calibration did.
pub fn calibration_line(c: &Calibration) -> String {
    format!(
        "calibration on validation: temperature {:.3}, expected calibration error {:.4} -> {:.4}",
        c.temperature, c.ece_before, c.ece_after
    )
}

/// What a fine-tune did besides tuning the weights.
#[derive(Clone, Debug, Serialize)]
pub struct Finetuned {
    pub epochs_run: usize,
    /// Labels added as new classes, in order.
    pub added_labels: Vec<String>,
    /// The refitted temperature, when there was validation data.
    pub calibration: Option<Calibration>,
}

/// A fine-tune, checked and prepared, that any driver runs: [`Finetune::prepare`], then the
/// [`FitSession`] of [`Finetune::session`] driven to the end (by [`finetune`] synchronously, by
/// the browser asynchronously), then [`Finetune::finish`]. The same data, options and seed
/// give the same bundle whichever driver ran it, and that bundle records its own fine-tune.
pub struct Finetune {
    manifest: Manifest,
    /// Taken by [`Finetune::session`].
    model: Option<SentimentModel>,
    train: Encoded,
    valid: Vec<Encoded>,
    options: TrainOptions,
    added: Vec<String>,
    /// What the bundle's `training` will say besides the fit's results.
    record: serde_json::Map<String, serde_json::Value>,
}

impl Finetune {
    /// Checks a fine-tune of `bundle` (named `base` in the record: the CLI's model path,
    /// Python's source, the name the page loaded the bundle under) on `data` (named `name` in messages: a file, "labels", "corrections") and
    /// prepares it: options that cannot train ([`TrainOptions::validate`]), no examples, an
    /// empty label, labels the model lacks (an error naming the first line that has one, unless
    /// `add_labels`: then they become new classes and the head grows) and labels that differ
    /// from known ones only by case or width are refused before anything is trained.
    pub fn prepare(
        bundle: &Bundle,
        base: &str,
        name: &str,
        data: &Dataset,
        valid: &[Example],
        add_labels: bool,
        options: &TrainOptions,
    ) -> Result<Finetune> {
        options.validate()?;
        if data.examples.is_empty() {
            return Err(Error::Invalid(format!("{name}: fine-tuning needs at least one labelled example")));
        }
        let line = |i: usize| data.lines.get(i).copied().unwrap_or(i + 1);
        if let Some(i) = data.examples.iter().position(|e| e.label.trim().is_empty()) {
            return Err(Error::data(name, Some(line(i)), "the label is empty: every fine-tuning example needs one"));
        }
        let before = bundle.manifest.labels.clone();
        let labelled = data.examples.iter().enumerate().map(|(i, e)| (e.label.as_str(), line(i)));
        let valid_labelled = valid.iter().enumerate().map(|(i, e)| (e.label.as_str(), i + 1));
        let added = new_labels(name, &before, labelled)?;
        let valid_added = new_labels("validation data", &before, valid_labelled)?;
        if let Some(label) = valid_added.iter().find(|l| !added.contains(l)) {
            return Err(Error::Invalid(format!(
                "validation data: label '{label}' is in neither the model ({}) nor the fine-tuning data",
                before.join(", ")
            )));
        }
        if !added.is_empty() && !add_labels {
            let many = added.len() > 1;
            return Err(Error::Invalid(format!(
                "{name}: label{} {} {} new to the model (it knows {}): pass --add-labels to add {} as new class{} \
                 (Python: add_labels=True), or --label-map to rename {}",
                if many { "s" } else { "" },
                added.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(", "),
                if many { "are" } else { "is" },
                before.join(", "),
                if many { "them" } else { "it" },
                if many { "es" } else { "" },
                if many { "them" } else { "it" },
            )));
        }
        let base_training = bundle.manifest.training.clone();
        let Bundle { manifest, model } =
            with_labels_of(bundle.clone(), data.examples.iter().chain(valid), options.seed);
        let encode = |t: &str| encode(&manifest.tokenizer, &manifest.vocab, t);
        let train = Encoded::new(&encode, &manifest.labels, &data.examples, name)?;
        let valid = if valid.is_empty() {
            Vec::new()
        } else {
            vec![Encoded::new(&encode, &manifest.labels, valid, "validation data")?]
        };
        let mut record = serde_json::Map::new();
        record.insert("finetuned_from".into(), base.into());
        record.insert("data".into(), name.into());
        record.insert("examples".into(), train.len().into());
        record.insert("valid_examples".into(), valid.first().map_or(0, Encoded::len).into());
        record.insert("added_labels".into(), serde_json::json!(added));
        record.insert("options".into(), serde_json::json!(options));
        record.insert("base".into(), base_training);
        Ok(Finetune { manifest, model: Some(model), train, valid, options: options.clone(), added, record })
    }

    /// The labels after the fine-tune (the model's, then any added), in class order.
    pub fn labels(&self) -> &[String] {
        &self.manifest.labels
    }

    /// The fit loop over the prepared data. Call it once.
    pub fn session(&mut self) -> Result<FitSession<'_>> {
        let model = self.model.take().ok_or_else(|| Error::Invalid("this fine-tune has already run".into()))?;
        FitSession::new(model, &self.train, &self.valid, &self.manifest.labels, &self.options)
    }

    /// The tuned bundle (on the fit's device) from the session's result: with validation data,
    /// its metrics and a refitted temperature; without, no metrics (the base model's no longer
    /// describe it). `manifest.training` records this fine-tune, the base's record under
    /// `base`.
    pub fn finish(self, fitted: Fitted) -> (Bundle, Finetuned) {
        let Finetune { mut manifest, valid, added, mut record, .. } = self;
        let Fitted { model, valid: metrics, epochs_run, .. } = fitted;
        manifest.metrics = metrics.into_iter().next();
        let mut bundle = Bundle { manifest, model };
        let calibration = valid.first().map(|v| {
            let device = bundle.model.head.weight.device();
            calibrate(&mut bundle, v, &device)
        });
        record.insert("epochs_run".into(), epochs_run.into());
        record.insert("metrics".into(), serde_json::json!(bundle.manifest.metrics));
        record.insert("calibration".into(), serde_json::json!(calibration));
        bundle.manifest.training = serde_json::Value::Object(record);
        (bundle, Finetuned { epochs_run, added_labels: added, calibration })
    }
}

/// Fine-tunes `bundle` as `xinsheng finetune` and Python do: [`Finetune::prepare`] (errors
/// there), the fit loop with synchronous reads ([`drive`]), [`Finetune::finish`]. On an error
/// the caller's bundle is untouched.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    bundle: &Bundle,
    base: &str,
    name: &str,
    data: &Dataset,
    valid: &[Example],
    add_labels: bool,
    options: &TrainOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<(Bundle, Finetuned)> {
    let mut job = Finetune::prepare(bundle, base, name, data, valid, add_labels, options)?;
    let fitted = drive(job.session()?, on_event);
    Ok(job.finish(fitted))
}

/// Fits the bundle's temperature on `data` (usually validation data) so that its
/// probabilities are calibrated ([`crate::calibration::calibrate_logits`]) and stores it in the
/// manifest; where the data cannot determine a temperature, the previous one stays.
pub fn calibrate(bundle: &mut Bundle, data: &Encoded, device: &Device) -> Calibration {
    let logits = logits_of(&bundle.model, &data.ids, device);
    let calibration = calibrate_logits(&logits, &data.labels, bundle.manifest.temperature);
    bundle.manifest.temperature = calibration.temperature;
    calibration
}

/// `xinsheng eval` as a library call: `classifier`'s metrics on labelled `data` (named `name` in
/// messages) — accuracy, macro-F1, ECE, per-class figures and the confusion matrix, plus the
/// figures on the data's own labels when it uses fewer than the model knows
/// ([`Metrics::over_data_labels`]). The CLI prints them, Python returns them as a dict.
///
/// Errors: [`Error::Invalid`] when `data` is empty, [`Error::Data`] naming the first line whose
/// label the model lacks.
pub fn evaluate(classifier: &Classifier, name: &str, data: &Dataset) -> Result<Metrics> {
    if data.examples.is_empty() {
        return Err(Error::Invalid(format!("{name}: evaluation needs at least one labelled example")));
    }
    let labels = classifier.labels();
    data.check_labels(name, labels)?;
    let encode = |t: &str| classifier.encode(t);
    let set = Encoded::new(&encode, labels, &data.examples, name)?;
    Ok(Metrics::over_data_labels(labels, &set.labels, &classifier.probabilities_of(&set.ids)))
}

/// Fine-tuning's defaults, the one set every driver uses (`xinsheng finetune`, Python's
/// `finetune`, the browser's `fineTune`): 8 epochs at lr 2e-3 in batches of 16, patience 3,
/// seed 42. Fine-tunes are mostly a handful of corrections, where these move the model within
/// seconds; a file of new data may want fewer epochs with `--valid` for early stopping.
pub fn finetune_options() -> TrainOptions {
    TrainOptions { epochs: 8, lr: 2e-3, batch_size: 16, ..TrainOptions::default() }
}

/// [`finetune_options`] with a driver's options laid over them ([`overlay`]: `null` keeps a
/// default; Python's and the CLI's names are `batch_size`, the browser's `batchSize`), then
/// checked ([`TrainOptions::validate`]).
///
/// Errors: [`Error::Invalid`] naming an unknown option, one of the wrong type, or one out of range.
pub fn finetune_options_with(
    options: &serde_json::Map<String, serde_json::Value>,
    spelling: Spelling,
) -> Result<TrainOptions> {
    let options = overlay("fine-tuning options", &finetune_options(), options, spelling)?;
    options.validate()?;
    Ok(options)
}

impl TrainSpec {
    /// `self` with a driver's options laid over it ([`overlay`]; every field but the file lists
    /// `data`, `valid` and `teacher`, which drivers pass as paths), then checked
    /// ([`TrainSpec::validate`]).
    ///
    /// Errors: [`Error::Invalid`] naming an unknown option, one of the wrong type, or one out of range.
    pub fn with_options(
        self,
        options: &serde_json::Map<String, serde_json::Value>,
        spelling: Spelling,
    ) -> Result<TrainSpec> {
        if let Some(name) = options.keys().find(|k| ["data", "valid", "teacher"].contains(&k.as_str())) {
            return Err(Error::Invalid(format!("'{name}' is a list of files, not a training option")));
        }
        let spec = overlay("training options", &self, options, spelling)?;
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<()>) -> String {
        result.expect_err("refused").to_string()
    }

    #[test]
    fn validate_refuses_options_that_cannot_train() {
        let ok = TrainOptions::default();
        assert!(ok.validate().is_ok());
        assert!(finetune_options().validate().is_ok());
        let bad = |change: fn(&mut TrainOptions)| {
            let mut o = ok.clone();
            change(&mut o);
            message(o.validate())
        };
        assert_eq!(bad(|o| o.lr = f64::NAN), "the learning rate (lr) must be a finite number above 0, got NaN");
        assert_eq!(bad(|o| o.lr = -1.0), "the learning rate (lr) must be a finite number above 0, got -1");
        assert_eq!(bad(|o| o.lr = 0.0), "the learning rate (lr) must be a finite number above 0, got 0");
        assert_eq!(bad(|o| o.lr = f64::INFINITY), "the learning rate (lr) must be a finite number above 0, got inf");
        assert_eq!(bad(|o| o.epochs = 0), "epochs must be at least 1, got 0");
        assert_eq!(bad(|o| o.batch_size = 0), "the batch size must be at least 1, got 0");
        assert!(bad(|o| o.patience = 0).starts_with("patience must be at least 1, got 0"));
        assert_eq!(bad(|o| o.distill.weight = f64::NAN), "the distillation weight must be in [0, 1], got NaN");
        assert_eq!(
            bad(|o| o.distill.temperature = f64::INFINITY),
            "the distillation temperature must be positive, got inf"
        );
    }

    fn object(json: &str) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn drivers_options_reach_the_spec_through_one_schema() {
        let base = TrainSpec { data: vec!["d.tsv".into()], ..TrainSpec::default() };
        let spec = base
            .clone()
            .with_options(
                &object(
                    r#"{"arch": "gru", "hidden": 64, "pooling": "mean-max-last", "encoding": "gbk",
                            "label_map": "1=positive,0=negative", "text_column": "review", "temperature": null}"#,
                ),
                Spelling::Snake,
            )
            .unwrap();
        assert_eq!((spec.arch, spec.hidden, spec.pooling), (Arch::Gru, 64, Pooling::MeanMaxLast));
        assert_eq!(spec.read.encoding, crate::input::Encoding::Gb18030);
        assert_eq!(spec.read.label_map.to_string(), "1=positive,0=negative");
        assert_eq!(spec.read.text_column.as_deref(), Some("review"));
        assert_eq!(spec.temperature, None);
        // No options: the defaults, field for field.
        let same = base.clone().with_options(&serde_json::Map::new(), Spelling::Snake).unwrap();
        assert_eq!(serde_json::to_value(&same).unwrap(), serde_json::to_value(&base).unwrap());
        let err = |json: &str| base.clone().with_options(&object(json), Spelling::Snake).unwrap_err().to_string();
        assert!(
            err(r#"{"hiden": 3}"#).starts_with("unknown training option 'hiden' (expected arch, batch_size, "),
            "{}",
            err(r#"{"hiden": 3}"#)
        );
        assert_eq!(
            err(r#"{"arch": "cnn"}"#),
            "training option 'arch': unknown architecture 'cnn' (expected rnn, lstm, gru)"
        );
        assert_eq!(err(r#"{"lr": -1}"#), "the learning rate (lr) must be a finite number above 0, got -1");
        assert_eq!(err(r#"{"data": ["x.tsv"]}"#), "'data' is a list of files, not a training option");

        let tuned =
            finetune_options_with(&object(r#"{"batchSize": 4, "freeze": "encoder"}"#), Spelling::Camel).unwrap();
        assert_eq!((tuned.batch_size, tuned.freeze, tuned.epochs), (4, Freeze::Encoder, finetune_options().epochs));
        let err =
            finetune_options_with(&object(r#"{"distill": {"weight": 1}}"#), Spelling::Snake).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown fine-tuning option 'distill' (expected batch_size, epochs, freeze, lr, patience, seed)"
        );
        let err = finetune_options_with(&object(r#"{"epochs": 0}"#), Spelling::Snake).unwrap_err().to_string();
        assert_eq!(err, "epochs must be at least 1, got 0");
    }

    #[test]
    fn validate_checks_a_train_spec_before_any_file_is_read() {
        // The data file does not exist: validation does not read it.
        let ok = TrainSpec { data: vec!["no-such-file.tsv".into()], ..TrainSpec::default() };
        assert!(ok.validate().is_ok());
        let bad = |change: fn(&mut TrainSpec)| {
            let mut s = ok.clone();
            change(&mut s);
            message(s.validate())
        };
        assert_eq!(bad(|s| s.data.clear()), "training needs at least one data file");
        assert_eq!(bad(|s| s.lr = f64::NAN), "the learning rate (lr) must be a finite number above 0, got NaN");
        assert_eq!(bad(|s| s.epochs = 0), "epochs must be at least 1, got 0");
        assert!(bad(|s| s.distill_weight = Some(0.5)).contains("give a teacher file"));
        assert_eq!(
            bad(|s| {
                s.teacher = vec!["t.tsv".into()];
                s.distill_weight = Some(f64::NAN);
            }),
            "the distillation weight must be in [0, 1], got NaN"
        );
        assert_eq!(bad(|s| s.hidden = 0), "hidden size must be at least 1");
        assert_eq!(bad(|s| s.dropout = f64::NAN), "dropout must be in [0, 1), got NaN");
        assert_eq!(bad(|s| s.max_len = 0), "max_len (tokens kept per text) must be at least 1, got 0");
        assert_eq!(bad(|s| s.vocab_size = 2), "vocab size must be at least 3 (<pad>, <unk> and one token), got 2");
        // lm_vocab matters only with pretraining.
        let mut s = ok.clone();
        s.lm_vocab = 0;
        assert!(s.validate().is_ok());
        s.pretrain_epochs = 1;
        assert_eq!(message(s.validate()), "lm_vocab must be at least 3 (<pad>, <unk> and one token), got 0");
        // train() refuses the same spec before reading its (missing) file.
        let spec = TrainSpec { lr: -1.0, ..ok };
        let err = train(&spec, &Device::flex(), &mut |_| {}, &mut |_| {}).err().expect("refused").to_string();
        assert_eq!(err, "the learning rate (lr) must be a finite number above 0, got -1");
    }
}
