//! `xinsheng`: the command line around `xinsheng-core`. It parses options, reads files and
//! draws progress; every model computation is the core crate's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use xinsheng_core::bundle::{Bundle, Manifest, Precision};
use xinsheng_core::classifier::{encode, encode_tokens};
use xinsheng_core::data::{Dataset, new_labels, read_examples_with, read_teacher};
use xinsheng_core::input::{Encoding, Format, LabelMap, ReadOptions, parse_records, read_records};
use xinsheng_core::train::{
    Calibration, Distillation, Encoded, Event, Freeze, TrainOptions, attach_teacher, calibrate, finetune, fit, pretrain,
};
use xinsheng_core::vocab::Bigrams;
use xinsheng_core::{Arch, Classifier, Metrics, ModelConfig, Pooling, Tokenizer, TokenizerKind, Vocab};

#[derive(Parser)]
#[command(name = "xinsheng", version, about = "心声 xinsheng: Chinese sentiment classification with recurrent networks", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from labelled data and write a bundle
    Train(TrainArgs),
    /// Measure a model on labelled data: accuracy, macro-F1, calibration error (ECE), per-class P/R/F1, confusion matrix
    Eval(EvalArgs),
    /// Classify texts given as arguments, in a file, or on standard input (one per line; blank lines are skipped)
    Predict(PredictArgs),
    /// Continue training a model on new labelled data (--add-labels adds new labels as classes)
    Finetune(FinetuneArgs),
}

/// How text files are read (every subcommand reads them the same way, as the page does).
#[derive(Args, Clone)]
struct InputOptions {
    /// Text encoding of the input files: auto (a BOM, else UTF-8 if valid, else GB18030),
    /// utf-8, gb18030 (also for GBK/GB2312, what Chinese Excel and Notepad save), utf-16le, utf-16be
    #[arg(long, default_value = "auto", value_parser = core_value::<Encoding>)]
    encoding: Encoding,
    /// The column (JSONL: key) holding the review text [default: the first of text, review,
    /// content, sentence, comment, 评论, 内容]
    #[arg(long)]
    text_column: Option<String>,
    /// The column (key) holding the label [default: the first of label, sentiment, labels,
    /// polarity, 标签, 情感]
    #[arg(long)]
    label_column: Option<String>,
    /// Rename labels as they are read, e.g. `1=positive,0=negative`; a label missing from the
    /// map is an error
    #[arg(long, value_parser = core_value::<LabelMap>)]
    label_map: Option<LabelMap>,
}

impl InputOptions {
    fn options(&self, format: Option<Format>) -> ReadOptions {
        ReadOptions {
            format,
            encoding: self.encoding,
            text_column: self.text_column.clone(),
            label_column: self.label_column.clone(),
            label_map: self.label_map.clone().unwrap_or_default(),
        }
    }
}

/// A value parsed by the core's `FromStr` (encodings, label maps), with its message for clap.
fn core_value<T: std::str::FromStr<Err = xinsheng_core::Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: xinsheng_core::Error| e.to_string())
}

#[derive(Args)]
struct TrainArgs {
    /// Training data: .tsv, .csv or .jsonl with a text and a label column; repeat to train on several
    /// files together (e.g. the corpus and the targeted augmentation in data/augment/)
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Validation data (same formats) for early stopping and model selection
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Recurrent cell
    #[arg(long, default_value = "lstm", value_parser = ["rnn", "lstm", "gru"])]
    arch: String,
    /// Run each layer in both directions
    #[arg(long)]
    bidirectional: bool,
    /// `char`: one token per character; `word`: jieba segmentation
    #[arg(long, default_value = "char", value_parser = ["char", "word"])]
    tokenizer: String,
    #[arg(long, default_value_t = 128)]
    embed_dim: usize,
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Stacked recurrent layers
    #[arg(long, default_value_t = 1)]
    layers: usize,
    #[arg(long, default_value_t = 0.3)]
    dropout: f64,
    /// Tokens kept per text (longer texts keep their first and last halves)
    #[arg(long, default_value_t = 160)]
    max_len: usize,
    /// Largest vocabulary, special tokens included
    #[arg(long, default_value_t = 6000)]
    vocab_size: usize,
    /// Size of the bigram channel: embeddings for the most frequent adjacent token pairs,
    /// fed to the recurrent layer and pooled into the head (0 turns it off)
    #[arg(long, default_value_t = 0)]
    bigrams: usize,
    #[arg(long, default_value_t = 64)]
    bigram_dim: usize,
    /// Tokens seen fewer times than this map to <unk>
    #[arg(long, default_value_t = 2)]
    min_freq: usize,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Epochs of language-model pretraining on the training texts before classification
    /// (ULMFiT-style; 0 skips it)
    #[arg(long, default_value_t = 0)]
    pretrain_epochs: usize,
    /// Tokens the pretraining language model predicts (the rest count as <unk>)
    #[arg(long, default_value_t = 3000)]
    lm_vocab: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Stop after this many epochs without better validation accuracy
    #[arg(long, default_value_t = 3)]
    patience: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Weight precision in the bundle
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32"])]
    precision: String,
    /// What the head sees of the recurrent outputs: `mean-max` pools over time;
    /// `mean-max-last` adds each direction's final state (helps verdicts at the end of long texts)
    #[arg(long, default_value = "mean-max", value_parser = ["mean-max", "mean-max-last"])]
    pooling: String,
    /// Teacher probabilities to distil (repeatable): .tsv or .csv with `text` and one `p_LABEL`
    /// column per label (`p_positive` alone for two labels). Rows whose text is a training
    /// text add the teacher term to that example; other rows (e.g. an augmented transfer set)
    /// are trained on the teacher term alone; validation texts are skipped. See scripts/teacher
    #[arg(long)]
    teacher: Vec<PathBuf>,
    /// α: weight of the teacher term, loss = α·T²·KL(teacher ‖ student) + (1 − α)·cross-entropy
    /// [default: 0.5]
    #[arg(long)]
    distill_weight: Option<f64>,
    /// T: the distillation temperature; teacher and student distributions are both softened by
    /// it in the teacher term (not the calibration temperature, which is fitted on --valid)
    /// [default: 1]
    #[arg(long)]
    temperature: Option<f64>,
    /// Output bundle: a directory (gets model.bpk) or a .bpk file
    #[arg(long)]
    out: PathBuf,
    /// How input files are read
    #[command(flatten)]
    read: InputOptions,
}

#[derive(Args)]
struct EvalArgs {
    /// Bundle directory or .bpk file
    #[arg(long, default_value = "models/default")]
    model: PathBuf,
    /// Labelled data: .tsv, .csv or .jsonl with a text and a label column (see --text-column)
    #[arg(long)]
    data: PathBuf,
    /// Print one JSON object instead of tables
    #[arg(long)]
    json: bool,
    /// How input files are read
    #[command(flatten)]
    read: InputOptions,
}

#[derive(Args)]
struct PredictArgs {
    /// Bundle directory or .bpk file
    #[arg(long, default_value = "models/default")]
    model: PathBuf,
    /// A file of reviews: .txt (one per line) or the `text` column of a .tsv, .csv or .jsonl
    #[arg(long)]
    input: Option<PathBuf>,
    /// Add each token's importance for the predicted label ("tokens": [{token, weight}]):
    /// how much the label's probability falls without that token
    #[arg(long)]
    explain: bool,
    /// Reviews to classify; with none and no --input, lines are read from standard input
    texts: Vec<String>,
    /// How input files are read
    #[command(flatten)]
    read: InputOptions,
}

#[derive(Args)]
struct FinetuneArgs {
    /// Bundle to start from (directory or .bpk file)
    #[arg(long, default_value = "models/default")]
    model: PathBuf,
    /// New labelled data: .tsv, .csv or .jsonl with a text and a label column (see --text-column)
    #[arg(long)]
    data: PathBuf,
    /// Validation data for early stopping (otherwise the last epoch is kept)
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Output bundle: a directory (gets model.bpk) or a .bpk file
    #[arg(long)]
    out: PathBuf,
    /// Add the data's labels that the model lacks as new classes (e.g. 中立); without it a new
    /// label is an error, so that a typo cannot grow the model
    #[arg(long)]
    add_labels: bool,
    /// Parameters left untouched
    #[arg(long, default_value = "none", value_parser = ["none", "embedding", "encoder"])]
    freeze: String,
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 3)]
    patience: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32"])]
    precision: String,
    /// How input files are read
    #[command(flatten)]
    read: InputOptions,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train(args),
        Command::Eval(args) => eval(args),
        Command::Predict(args) => predict(args),
        Command::Finetune(args) => finetune_cmd(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn device() -> Device {
    #[cfg(feature = "wgpu")]
    return Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    #[cfg(not(feature = "wgpu"))]
    Device::flex()
}

fn load_data(path: &Path, input: &InputOptions) -> Result<Dataset> {
    let name = path.display().to_string();
    let data = read_examples_with(&name, &input.options(None))?;
    if data.skipped_empty > 0 {
        eprintln!("warning: {name}: skipped {} rows with empty text", data.skipped_empty);
    }
    Ok(data)
}

/// The file names, joined for messages.
fn names(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" + ")
}

fn load_bundle(path: &Path) -> Result<Bundle> {
    Ok(Bundle::load(path, &device())?)
}

/// Draws one bar per epoch and prints a line when the epoch ends.
fn progress_printer() -> impl FnMut(Event) {
    let style = ProgressStyle::with_template("epoch {prefix:>2} [{bar:30}] {pos}/{len} batches {msg} ({elapsed})")
        .expect("valid template")
        .progress_chars("=> ");
    let mut progress: Option<ProgressBar> = None;
    let started = Instant::now();
    move |event| match event {
        Event::Batch { epoch, batch, batches, loss, accuracy } => {
            let bar = progress.get_or_insert_with(|| {
                let b = ProgressBar::new(batches as u64).with_style(style.clone());
                b.set_prefix(epoch.to_string());
                b
            });
            bar.set_position(batch as u64);
            bar.set_message(format!("loss {loss:.4} acc {accuracy:.4}"));
        }
        Event::Pretrain { epoch, batch, batches, loss } => {
            let bar = progress.get_or_insert_with(|| {
                let b = ProgressBar::new(batches as u64).with_style(style.clone());
                b.set_prefix(format!("LM {epoch}"));
                b
            });
            bar.set_position(batch as u64);
            bar.set_message(format!("loss {loss:.4}"));
            if batch == batches {
                bar.finish_and_clear();
                progress = None;
                eprintln!(
                    "pretrain epoch {epoch:>2}: language-model loss {loss:.4} [{:.0}s]",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Event::Epoch { epoch, train_loss, train_accuracy, valid, best } => {
            if let Some(b) = progress.take() {
                b.finish_and_clear();
            }
            let valid =
                valid.map_or(String::new(), |m| format!(" | valid acc {:.4} macro-F1 {:.4}", m.accuracy, m.macro_f1));
            let mark = if best { " *best" } else { "" };
            eprintln!(
                "epoch {epoch:>2}: train loss {train_loss:.4} acc {train_accuracy:.4}{valid}{mark} [{:.0}s]",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let started = Instant::now();
    let kind: TokenizerKind = args.tokenizer.parse().map_err(anyhow::Error::msg)?;
    let arch: Arch = args.arch.parse().map_err(anyhow::Error::msg)?;
    let precision: Precision = args.precision.parse().map_err(anyhow::Error::msg)?;
    let pooling: Pooling = args.pooling.parse().map_err(anyhow::Error::msg)?;
    if args.teacher.is_empty() && (args.distill_weight.is_some() || args.temperature.is_some()) {
        bail!("--distill-weight and --temperature weigh the teacher term: give --teacher FILE too");
    }
    let defaults = Distillation::default();
    let distill = Distillation {
        weight: args.distill_weight.unwrap_or(defaults.weight),
        temperature: args.temperature.unwrap_or(defaults.temperature),
    };
    distill.validate().map_err(anyhow::Error::msg)?;
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    let mut train_data = Dataset::default();
    for path in &args.data {
        let part = load_data(path, &args.read)?;
        train_data.examples.extend(part.examples);
        train_data.lines.extend(part.lines);
    }
    let valid_data = args.valid.as_deref().map(|p| load_data(p, &args.read)).transpose()?;
    let mut labels = train_data.labels();
    labels.sort();
    if labels.len() < 2 {
        bail!("{}: a classifier needs at least 2 labels, found {:?}", names(&args.data), labels);
    }
    if let (Some(path), Some(valid)) = (&args.valid, &valid_data) {
        valid.check_labels(&path.display().to_string(), &labels)?;
    }

    let tokenizer = Tokenizer::new(kind, args.max_len);
    let tokens: Vec<Vec<String>> = train_data.examples.iter().map(|e| tokenizer.tokenize(&e.text)).collect();
    let vocab = Vocab::build(tokens.iter().map(Vec::as_slice), args.min_freq, args.vocab_size);
    let data_name = names(&args.data);
    let train_ids = tokens.iter().map(|t| encode_tokens(&vocab, t)).collect();
    let mut train_set = Encoded::with_ids(train_ids, &labels, &train_data.examples, &data_name)?;
    let encode = |t: &str| encode(&tokenizer, &vocab, t);
    let mut teacher_rows = Vec::new();
    for path in &args.teacher {
        teacher_rows.extend(read_teacher(&path.display().to_string(), &labels)?);
    }
    let teacher_match = (!args.teacher.is_empty()).then(|| {
        let held_out = valid_data.as_ref().map_or(&[][..], |v| &v.examples[..]);
        let (set, stats) = attach_teacher(train_set.clone(), &train_data.examples, &teacher_rows, held_out, &encode);
        train_set = set;
        eprintln!(
            "teacher: {} training examples matched, {} not scored by the teacher, {} transfer texts added \
             ({} validation texts and {} duplicates skipped); α {}, T {}",
            stats.matched,
            stats.unmatched,
            stats.transfer,
            stats.held_out,
            stats.duplicates,
            distill.weight,
            distill.temperature
        );
        stats
    });
    let valid_set = match (&valid_data, &args.valid) {
        (Some(v), Some(path)) => Some(Encoded::new(&encode, &labels, &v.examples, &path.display().to_string())?),
        _ => None,
    };
    let bigrams = (args.bigrams > 0)
        .then(|| Bigrams::build(train_set.ids.iter().map(Vec::as_slice), args.min_freq, args.bigrams));
    let config = ModelConfig {
        arch,
        bidirectional: args.bidirectional,
        vocab_size: vocab.len(),
        embed_dim: args.embed_dim,
        hidden: args.hidden,
        layers: args.layers,
        dropout: args.dropout,
        num_classes: labels.len(),
        bigram_vocab_size: bigrams.as_ref().map_or(0, Bigrams::len),
        bigram_dim: args.bigram_dim,
        pooling,
    };
    config.validate().map_err(anyhow::Error::msg)?;
    eprintln!(
        "{} training examples, {} labels ({}), vocabulary {} {} tokens{}; {}{} x{} hidden {}",
        train_data.examples.len(),
        labels.len(),
        labels.join(", "),
        vocab.len(),
        kind,
        bigrams.as_ref().map_or(String::new(), |b| format!(" + {} bigrams", b.len())),
        if args.bidirectional { "bi-" } else { "" },
        arch,
        args.layers,
        args.hidden
    );

    let device = device();
    // Seed before initialising so that the same command gives the same model.
    device.seed(args.seed);
    let model = config.init(&device).with_bigrams(bigrams.clone());
    let mut manifest = Manifest::new(config.clone(), tokenizer, labels.clone(), vocab.clone());
    manifest.bigrams = bigrams;
    let options = TrainOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        patience: args.patience,
        freeze: Freeze::None,
        distill,
    };
    let model = if args.pretrain_epochs > 0 {
        let lm_options = TrainOptions { epochs: args.pretrain_epochs, ..options.clone() };
        pretrain(model, &train_set, args.lm_vocab.min(config.vocab_size), &lm_options, &mut progress_printer())?
    } else {
        model
    };
    let fitted = fit(model, &train_set, valid_set.as_ref(), &labels, &options, &mut progress_printer());

    manifest.metrics = fitted.valid.clone();
    let data_files: Vec<String> = args.data.iter().map(|p| p.display().to_string()).collect();
    let mut bundle = Bundle { manifest, model: fitted.model };
    let calibration = valid_set.as_ref().map(|v| report_calibration(calibrate(&mut bundle, v, &device)));
    bundle.manifest.training = serde_json::json!({
        "data": data_files,
        "valid": args.valid.as_ref().map(|p| p.display().to_string()),
        "teacher": args.teacher.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "teacher_match": teacher_match,
        "calibration": calibration,
        "options": options,
        "min_freq": args.min_freq,
        "bigrams": args.bigrams,
        "pretrain_epochs": args.pretrain_epochs,
        "lm_vocab": args.lm_vocab,
        "epochs_run": fitted.epochs_run,
        "seconds": started.elapsed().as_secs_f64().round(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    });
    let file = bundle.save(&args.out, precision)?;
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    eprintln!("wrote {} ({:.2} MB) in {:.0}s", file.display(), size as f64 / 1e6, started.elapsed().as_secs_f64());
    if let Some(m) = &bundle.manifest.metrics {
        eprintln!("best validation accuracy {:.4}, macro-F1 {:.4}", m.accuracy, m.macro_f1);
    }
    Ok(())
}

/// Prints what calibration did and passes it on.
fn report_calibration(c: Calibration) -> Calibration {
    eprintln!(
        "calibration on validation: temperature {:.3}, expected calibration error {:.4} -> {:.4}",
        c.temperature, c.ece_before, c.ece_after
    );
    c
}

fn eval(args: EvalArgs) -> Result<()> {
    let bundle = load_bundle(&args.model)?;
    let data = load_data(&args.data, &args.read)?;
    let name = args.data.display().to_string();
    data.check_labels(&name, &bundle.manifest.labels)?;
    let labels = bundle.manifest.labels.clone();
    let device = device();
    let classifier = Classifier::new(bundle, device.clone());
    let encode = |t: &str| classifier.encode(t);
    let set = Encoded::new(&encode, &labels, &data.examples, &name)?;
    let metrics = Metrics::from_probabilities(&labels, &set.labels, &classifier.probabilities_of(&set.ids));
    if args.json {
        println!("{}", serde_json::to_string(&metrics)?);
    } else {
        print_metrics(&metrics);
    }
    Ok(())
}

fn print_metrics(m: &Metrics) {
    println!("accuracy  {:.4}\nmacro-F1  {:.4}", m.accuracy, m.macro_f1);
    if let Some(ece) = m.ece {
        println!("ECE       {ece:.4} (15 bins)");
    }
    println!();
    let width = m.confusion.labels.iter().map(|l| l.chars().count()).max().unwrap_or(5).max(5);
    println!("{:width$}  precision  recall  f1      support", "label");
    for label in &m.confusion.labels {
        let c = &m.per_class[label];
        println!("{label:width$}  {:.4}     {:.4}  {:.4}  {}", c.precision, c.recall, c.f1, c.support);
    }
    println!("\nconfusion (rows: truth, columns: predicted)");
    print!("{:width$}", "");
    for label in &m.confusion.labels {
        print!("  {label:>width$}");
    }
    println!();
    for (label, row) in m.confusion.labels.iter().zip(&m.confusion.matrix) {
        print!("{label:width$}");
        for n in row {
            print!("  {n:>width$}");
        }
        println!();
    }
}

fn predict(args: PredictArgs) -> Result<()> {
    let classifier = Classifier::new(load_bundle(&args.model)?, device());
    let mut out = std::io::stdout().lock();
    let mut emit = |texts: &[String]| -> Result<()> {
        if args.explain {
            for text in texts {
                let (p, tokens) = classifier.explain(text);
                let line = serde_json::json!({ "text": text, "label": p.label, "score": p.score, "probs": p.probs, "tokens": tokens });
                writeln!(out, "{line}")?;
            }
            return Ok(());
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (text, p) in texts.iter().zip(classifier.predict(&refs)) {
            let line = serde_json::json!({ "text": text, "label": p.label, "score": p.score, "probs": p.probs });
            writeln!(out, "{line}")?;
        }
        Ok(())
    };
    // Arguments, a file and standard input all go through the core's one reader: BOM dropped,
    // encoding detected, blank reviews skipped and counted.
    let records = if !args.texts.is_empty() {
        let options = ReadOptions { format: Some(Format::Txt), encoding: Encoding::Utf8, ..ReadOptions::default() };
        parse_records("arguments", args.texts.join("\n").as_bytes(), &options)?
    } else {
        match &args.input {
            Some(path) => {
                let name = path.display().to_string();
                // .tsv/.csv/.jsonl give their text column; any other file is one review per line.
                read_records(&name, &args.read.options(Some(Format::from_name(&name).unwrap_or(Format::Txt))))?
            }
            None => {
                let mut bytes = Vec::new();
                std::io::stdin().lock().read_to_end(&mut bytes).context("cannot read standard input")?;
                parse_records("<stdin>", &bytes, &args.read.options(Some(Format::Txt)))?
            }
        }
    };
    if records.skipped_blank > 0 {
        eprintln!("skipped {} blank reviews", records.skipped_blank);
    }
    let texts: Vec<String> = records.records.into_iter().map(|r| r.text).collect();
    // Classify in chunks so that output streams on long inputs.
    for chunk in texts.chunks(256) {
        emit(chunk)?;
    }
    Ok(())
}

fn finetune_cmd(args: FinetuneArgs) -> Result<()> {
    let freeze: Freeze = args.freeze.parse().map_err(anyhow::Error::msg)?;
    let precision: Precision = args.precision.parse().map_err(anyhow::Error::msg)?;
    let bundle = load_bundle(&args.model)?;
    let data = load_data(&args.data, &args.read)?;
    let valid = args.valid.as_deref().map(|p| load_data(p, &args.read)).transpose()?;
    let before = bundle.manifest.labels.clone();
    let data_name = args.data.display().to_string();
    let added = new_labels(
        &data_name,
        &before,
        data.examples.iter().map(|e| e.label.as_str()).zip(data.lines.iter().copied()),
    )?;
    if !added.is_empty() && !args.add_labels {
        bail!(
            "{data_name}: label{} {} {} new to the model (it knows {}): pass --add-labels to add {} as new class{}, or \
             --label-map to rename {}",
            if added.len() > 1 { "s" } else { "" },
            added.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(", "),
            if added.len() > 1 { "are" } else { "is" },
            before.join(", "),
            if added.len() > 1 { "them" } else { "it" },
            if added.len() > 1 { "es" } else { "" },
            if added.len() > 1 { "them" } else { "it" },
        );
    }
    let options = TrainOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        patience: args.patience,
        freeze,
        distill: Distillation::default(),
    };
    let valid_examples = valid.map(|v| v.examples).unwrap_or_default();
    let (mut bundle, epochs_run) =
        finetune(bundle, &data.examples, &valid_examples, &options, &mut progress_printer())?;
    // Fine-tuning moves the logits: refit the temperature when there is validation data.
    let calibration = if valid_examples.is_empty() {
        None
    } else {
        let manifest = &bundle.manifest;
        let encode = |t: &str| encode(&manifest.tokenizer, &manifest.vocab, t);
        let valid_set = Encoded::new(&encode, &manifest.labels, &valid_examples, "validation data")?;
        Some(report_calibration(calibrate(&mut bundle, &valid_set, &device())))
    };
    if !added.is_empty() {
        eprintln!(
            "added labels: {} (the model grew from {} to {} classes)",
            added.join(", "),
            before.len(),
            bundle.manifest.labels.len()
        );
    }
    bundle.manifest.training = serde_json::json!({
        "finetuned_from": args.model.display().to_string(),
        "data": args.data.display().to_string(),
        "options": options,
        "epochs_run": epochs_run,
        "calibration": calibration,
        "base": bundle.manifest.training,
    });
    let file = bundle.save(&args.out, precision)?;
    eprintln!("wrote {}", file.display());
    Ok(())
}
