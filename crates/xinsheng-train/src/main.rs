//! `xinsheng`: the command line around `xinsheng-core`. It parses options, reads files and
//! draws progress; every model computation is the core crate's.

/// mimalloc keeps the recurrence's large, short-lived buffers for reuse where glibc's
/// allocator unmaps them and page-faults them back in every batch (about a fifth of batched
/// inference; docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tells mimalloc never to return freed memory to the OS (its purge delay, -1; by default it
/// purges after a second): training frees and re-allocates megabyte buffers at every step, and
/// faulting those pages back in cost ~15 % of training throughput. The process keeps its peak
/// footprint until it exits, which suits a command that exits when its job is done.
fn keep_freed_memory() {
    /// `mi_option_purge_delay` in mimalloc v3's `include/mimalloc.h` (libmimalloc-sys 0.1.49,
    /// pinned by Cargo.lock, does not name it).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mi_option_set only stores the value; mimalloc reads it when it next purges.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use xinsheng_core::bundle::{Bundle, Precision};
use xinsheng_core::data::Dataset;
use xinsheng_core::input::{Encoding, Format, LabelMap, ReadOptions, parse_records, read_records};
use xinsheng_core::recipe::{self, TrainSpec};
use xinsheng_core::schema::{Choice, Spelling, overlay};
use xinsheng_core::train::{Event, Freeze};
use xinsheng_core::{Arch, Classifier, Metrics, Pooling, TokenizerKind};

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
    /// Measure a model on labelled data: accuracy, macro-F1, calibration error (ECE), per-class P/R/F1, confusion matrix; on data that uses fewer labels than the model knows (binary reviews, three-label model), also the figures deciding among the data's labels alone and the share called another label
    Eval(EvalArgs),
    /// Classify texts in a file and/or given as arguments (the file's first; each argument is one review, an empty one included), or on standard input (one per line; blank lines are skipped, and input without a review is a note, not an error)
    Predict(PredictArgs),
    /// Continue training a model on new labelled data (--add-labels adds new labels as classes)
    Finetune(FinetuneArgs),
}

/// How text files are read (every subcommand reads them the same way, as the page does): the
/// core's [`ReadOptions`], field for field.
#[derive(Args, Clone, serde::Serialize)]
struct InputOptions {
    /// Text encoding of the input files: auto (a BOM, else UTF-8 if valid, else GB18030),
    /// utf-8, gb18030 (also for GBK/GB2312, what Chinese Excel and Notepad save), utf-16le, utf-16be
    #[arg(long, default_value_t = Encoding::Auto, value_parser = choice::<Encoding>())]
    encoding: Encoding,
    /// Input format: txt (one review per line), tsv, csv or jsonl (one JSON object per line)
    /// [default: from the file's extension: .txt, .tsv/.tab, .csv, .jsonl/.ndjson/.json; a name
    /// without one is txt; any other extension is refused]
    #[arg(long, value_parser = choice::<Format>())]
    format: Option<Format>,
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
    /// `format` is the source's own (standard input: txt); `--format` overrides it.
    fn options(&self, format: Option<Format>) -> Result<ReadOptions> {
        let mut read = overlay("file options", &ReadOptions::default(), &as_options(self)?, Spelling::Snake)?;
        read.format = read.format.or(format);
        Ok(read)
    }
}

/// A value parsed by the core's `FromStr` (label maps), with its message for clap.
fn core_value<T: std::str::FromStr<Err = xinsheng_core::Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: xinsheng_core::Error| e.to_string())
}

/// clap's parser for one of the core's named choices ([`Choice`]): the core's names are the
/// possible values `--help` lists, and the core parses (aliases included) and words the error.
#[derive(Clone)]
struct ChoiceParser<T>(std::marker::PhantomData<T>);

fn choice<T: Choice + Send + Sync>() -> ChoiceParser<T> {
    ChoiceParser(std::marker::PhantomData)
}

impl<T: Choice + Send + Sync> clap::builder::TypedValueParser for ChoiceParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<T, clap::Error> {
        let flag = arg.map(|a| format!("--{} ", a.get_id())).unwrap_or_default();
        T::parse_choice(value.to_str().unwrap_or_default())
            .map_err(|e| clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{flag}{e}\n")).with_cmd(cmd))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(T::names().into_iter().map(clap::builder::PossibleValue::new)))
    }
}

/// Parsed flags as the core's options: clap's field names are the core's option names, so the
/// core lays them over its defaults ([`xinsheng_core::schema::overlay`]) and no field is mapped
/// here by hand; a flag the core does not know fails every test that trains.
fn as_options(args: &impl serde::Serialize) -> Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::to_value(args)? {
        serde_json::Value::Object(map) => Ok(map),
        _ => anyhow::bail!("options are not a set of named values"),
    }
}

/// `train`'s flags. Everything but the output (`out`, `precision`) is a field of the core's
/// [`TrainSpec`] under the same name.
#[derive(Args, serde::Serialize)]
struct TrainArgs {
    /// Training data: .tsv, .csv or .jsonl with a text and a label column; repeat to train on several
    /// files together (e.g. the corpus and the targeted augmentation in data/augment/)
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Validation data (same formats) for early stopping, model selection and calibration;
    /// repeat for several files (e.g. data/valid.tsv and data/phenomena/valid.tsv): the epoch
    /// kept is the one with the best mean of their accuracies, and the temperature is fitted
    /// on all of them
    #[arg(long)]
    valid: Vec<PathBuf>,
    /// Recurrent cell
    #[arg(long, default_value_t = TrainSpec::default().arch, value_parser = choice::<Arch>())]
    arch: Arch,
    /// Run each layer in both directions
    #[arg(long)]
    bidirectional: bool,
    /// `char`: one token per character; `word`: jieba segmentation
    #[arg(long, default_value_t = TrainSpec::default().tokenizer, value_parser = choice::<TokenizerKind>())]
    tokenizer: TokenizerKind,
    #[arg(long, default_value_t = TrainSpec::default().embed_dim)]
    embed_dim: usize,
    #[arg(long, default_value_t = TrainSpec::default().hidden)]
    hidden: usize,
    /// Stacked recurrent layers
    #[arg(long, default_value_t = TrainSpec::default().layers)]
    layers: usize,
    #[arg(long, default_value_t = TrainSpec::default().dropout)]
    #[serde(with = "xinsheng_core::schema::number")]
    dropout: f64,
    /// Tokens kept per text (longer texts keep their first and last halves)
    #[arg(long, default_value_t = TrainSpec::default().max_len)]
    max_len: usize,
    /// Largest vocabulary, special tokens included
    #[arg(long, default_value_t = TrainSpec::default().vocab_size)]
    vocab_size: usize,
    /// Size of the bigram channel: embeddings for the most frequent adjacent token pairs,
    /// fed to the recurrent layer and pooled into the head (0 turns it off)
    #[arg(long, default_value_t = TrainSpec::default().bigrams)]
    bigrams: usize,
    #[arg(long, default_value_t = TrainSpec::default().bigram_dim)]
    bigram_dim: usize,
    /// Tokens seen fewer times than this map to <unk>
    #[arg(long, default_value_t = TrainSpec::default().min_freq)]
    min_freq: usize,
    #[arg(long, default_value_t = TrainSpec::default().epochs)]
    epochs: usize,
    /// Epochs of language-model pretraining on the training texts before classification
    /// (ULMFiT-style; 0 skips it)
    #[arg(long, default_value_t = TrainSpec::default().pretrain_epochs)]
    pretrain_epochs: usize,
    /// Tokens the pretraining language model predicts (the rest count as <unk>)
    #[arg(long, default_value_t = TrainSpec::default().lm_vocab)]
    lm_vocab: usize,
    #[arg(long, default_value_t = TrainSpec::default().batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = TrainSpec::default().lr)]
    #[serde(with = "xinsheng_core::schema::number")]
    lr: f64,
    /// Stop after this many epochs without better validation accuracy
    #[arg(long, default_value_t = TrainSpec::default().patience)]
    patience: usize,
    #[arg(long, default_value_t = TrainSpec::default().seed)]
    seed: u64,
    /// Weight precision in the bundle
    #[arg(long, default_value_t = Precision::default(), value_parser = choice::<Precision>())]
    #[serde(skip)]
    precision: Precision,
    /// What the head sees of the recurrent outputs: `mean-max` pools over time;
    /// `mean-max-last` adds each direction's final state (helps verdicts at the end of long texts)
    #[arg(long, default_value_t = TrainSpec::default().pooling, value_parser = choice::<Pooling>())]
    pooling: Pooling,
    /// Teacher probabilities to distil (repeatable): .tsv, .csv or .jsonl with a text column and one `p_LABEL`
    /// column per label (`p_positive` alone for two labels). Rows whose text is a training
    /// text add the teacher term to that example; other rows (e.g. an augmented transfer set)
    /// are trained on the teacher term alone; validation texts are skipped. See scripts/teacher
    #[arg(long)]
    teacher: Vec<PathBuf>,
    /// α: weight of the teacher term, loss = α·T²·KL(teacher ‖ student) + (1 − α)·cross-entropy
    /// [default: 0.5]
    #[arg(long)]
    #[serde(with = "xinsheng_core::schema::number::option")]
    distill_weight: Option<f64>,
    /// T: the distillation temperature; teacher and student distributions are both softened by
    /// it in the teacher term (not the calibration temperature, which is fitted on --valid)
    /// [default: 1]
    #[arg(long)]
    #[serde(with = "xinsheng_core::schema::number::option")]
    temperature: Option<f64>,
    /// Output bundle: a new, empty or model directory (gets model.bpk) or a .bpk file; checked
    /// before training starts (an existing file or a directory of other files is refused)
    #[arg(long)]
    #[serde(skip)]
    out: PathBuf,
    /// How input files are read
    #[command(flatten)]
    #[serde(flatten)]
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
    /// A file of reviews: .txt (one per line) or the `text` column of a .tsv, .csv or .jsonl;
    /// reviews also given as arguments are classified after the file's
    #[arg(long)]
    input: Option<PathBuf>,
    /// Add each token's importance for the predicted label ("tokens": [{token, weight}]):
    /// how much the label's probability falls without that token
    #[arg(long)]
    explain: bool,
    /// Reviews to classify (after those of --input, when both are given); with neither, lines
    /// are read from standard input
    texts: Vec<String>,
    /// How input files are read
    #[command(flatten)]
    read: InputOptions,
}

/// `finetune`'s flags; `freeze` … `seed` are the core's fine-tuning options
/// ([`recipe::finetune_options`]) under the same names.
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
    /// Output bundle: a new, empty or model directory (gets model.bpk) or a .bpk file; checked
    /// before training starts (an existing file or a directory of other files is refused)
    #[arg(long)]
    out: PathBuf,
    /// Add the data's labels that the model lacks as new classes (e.g. 中立); without it a new
    /// label is an error, so that a typo cannot grow the model
    #[arg(long)]
    add_labels: bool,
    #[command(flatten)]
    options: FinetuneOptions,
    #[arg(long, default_value_t = Precision::default(), value_parser = choice::<Precision>())]
    precision: Precision,
    /// How input files are read
    #[command(flatten)]
    read: InputOptions,
}

/// The fine-tuning options, the core's names.
#[derive(Args, serde::Serialize)]
struct FinetuneOptions {
    /// Parameters left untouched
    #[arg(long, default_value_t = recipe::finetune_options().freeze, value_parser = choice::<Freeze>())]
    freeze: Freeze,
    #[arg(long, default_value_t = recipe::finetune_options().epochs)]
    epochs: usize,
    #[arg(long, default_value_t = recipe::finetune_options().lr)]
    #[serde(with = "xinsheng_core::schema::number")]
    lr: f64,
    #[arg(long, default_value_t = recipe::finetune_options().batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = recipe::finetune_options().patience)]
    patience: usize,
    #[arg(long, default_value_t = recipe::finetune_options().seed)]
    seed: u64,
}

fn main() {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train(args),
        Command::Eval(args) => eval(args),
        Command::Predict(args) => predict(args),
        Command::Finetune(args) => finetune_cmd(args),
    };
    match result {
        Ok(()) => {}
        // A reader that stopped reading (`xinsheng predict … | head -1`) is not a failure: end
        // quietly, as Unix tools do.
        Err(e) if is_broken_pipe(&e) => {}
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader has gone. Every command writes its
/// results with `write!`/`writeln!` and `?` (never `println!`, which panics there), so this is
/// the one place a closed standard output is handled.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn device() -> Device {
    #[cfg(feature = "wgpu")]
    return Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    #[cfg(not(feature = "wgpu"))]
    Device::flex()
}

fn load_data(path: &Path, input: &InputOptions) -> Result<Dataset> {
    Ok(recipe::load_dataset(path, &input.options(None)?, &mut |line| eprintln!("{line}"))?)
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
        Event::Epoch { epoch, train_loss, train_accuracy, valid, score, best } => {
            if let Some(b) = progress.take() {
                b.finish_and_clear();
            }
            let valid = match (&valid[..], score) {
                ([m], _) => format!(" | valid acc {:.4} macro-F1 {:.4}", m.accuracy, m.macro_f1),
                ([_, _, ..], Some(score)) => format!(
                    " | valid acc {} (mean {score:.4})",
                    valid.iter().map(|m| format!("{:.4}", m.accuracy)).collect::<Vec<_>>().join(" / ")
                ),
                _ => String::new(),
            };
            let mark = if best { " *best" } else { "" };
            eprintln!(
                "epoch {epoch:>2}: train loss {train_loss:.4} acc {train_accuracy:.4}{valid}{mark} [{:.0}s]",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Refuses an output path that [`Bundle::save`] would fail on, before any data is read or any
/// epoch is trained.
fn check_out(out: &Path) -> Result<()> {
    Bundle::destination(out)?;
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    let started = Instant::now();
    // The core's schema: every flag but the file lists and the output is a TrainSpec field.
    let files = TrainSpec {
        data: args.data.clone(),
        valid: args.valid.clone(),
        teacher: args.teacher.clone(),
        ..TrainSpec::default()
    };
    let mut options = as_options(&args)?;
    options.retain(|name, _| !["data", "valid", "teacher"].contains(&name.as_str()));
    let spec = files.with_options(&options, Spelling::Snake)?;
    check_out(&args.out)?;
    let mut bundle = recipe::train(&spec, &device(), &mut progress_printer(), &mut |line| eprintln!("{line}"))?;
    if let Some(training) = bundle.manifest.training.as_object_mut() {
        training.insert("command".into(), std::env::args().collect::<Vec<_>>().join(" ").into());
    }
    let file = bundle.save(&args.out, args.precision)?;
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    eprintln!("wrote {} ({:.2} MB) in {:.0}s", file.display(), size as f64 / 1e6, started.elapsed().as_secs_f64());
    if let Some(m) = &bundle.manifest.metrics {
        eprintln!("best validation accuracy {:.4}, macro-F1 {:.4}", m.accuracy, m.macro_f1);
    }
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let bundle = load_bundle(&args.model)?;
    let data = load_data(&args.data, &args.read)?;
    let classifier = Classifier::new(bundle, device());
    let metrics = recipe::evaluate(&classifier, &args.data.display().to_string(), &data)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&metrics)?)?;
    } else {
        print_metrics(&mut out, &metrics)?;
    }
    Ok(())
}

/// Accuracy, macro-F1 and, where known, ECE: the first lines of `eval`'s report.
fn print_headline(out: &mut impl Write, m: &Metrics) -> std::io::Result<()> {
    writeln!(out, "accuracy  {:.4}\nmacro-F1  {:.4}", m.accuracy, m.macro_f1)?;
    if let Some(ece) = m.ece {
        writeln!(out, "ECE       {ece:.4} (15 bins)")?;
    }
    Ok(())
}

fn print_metrics(out: &mut impl Write, m: &Metrics) -> std::io::Result<()> {
    print_headline(out, m)?;
    writeln!(out)?;
    let width = m.confusion.labels.iter().map(|l| l.chars().count()).max().unwrap_or(5).max(5);
    writeln!(out, "{:width$}  precision  recall  f1      support", "label")?;
    for label in &m.confusion.labels {
        let c = &m.per_class[label];
        writeln!(out, "{label:width$}  {:.4}     {:.4}  {:.4}  {}", c.precision, c.recall, c.f1, c.support)?;
    }
    writeln!(out, "\nconfusion (rows: truth, columns: predicted)")?;
    write!(out, "{:width$}", "")?;
    for label in &m.confusion.labels {
        write!(out, "  {label:>width$}")?;
    }
    writeln!(out)?;
    for (label, row) in m.confusion.labels.iter().zip(&m.confusion.matrix) {
        write!(out, "{label:width$}")?;
        for n in row {
            write!(out, "  {n:>width$}")?;
        }
        writeln!(out)?;
    }
    if let Some(d) = &m.data_labels {
        let left_out = m
            .confusion
            .labels
            .iter()
            .filter(|l| !d.labels.contains(l))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "\nthe data uses {} of the model's {} labels; deciding among {} alone ({left_out} left out):",
            d.labels.len(),
            m.confusion.labels.len(),
            d.labels.join(", ")
        )?;
        print_headline(out, &d.metrics)?;
        writeln!(out, "called {left_out}: {:.2} % of rows", 100.0 * d.predicted_outside)?;
    }
    Ok(())
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
    // A file and standard input go through the core's one reader: BOM dropped, encoding
    // detected, blank reviews (lines, rows) skipped and counted; input that holds no review is a note, not an
    // error (there is nothing to classify). Arguments are reviews as the shell delimited them,
    // each one answered, an empty one included (as Python's and the page's classify do). The
    // file's reviews come first, then the arguments'; standard input is read only when there
    // are neither.
    let mut texts = Vec::new();
    let mut skipped_blank = 0;
    let mut read = |name: &str, records: xinsheng_core::Result<xinsheng_core::input::Records>| -> Result<()> {
        match records {
            Ok(records) => {
                skipped_blank += records.skipped_blank;
                texts.extend(records.records.into_iter().map(|r| r.text));
            }
            Err(e) if e.code().is_some_and(|c| ["empty-file", "empty-table", "no-reviews"].contains(&c.code)) => {
                eprintln!("note: no review in {name}: nothing to classify");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    };
    if let Some(path) = &args.input {
        let name = path.display().to_string();
        // The core's one rule for names: .tsv/.csv/.jsonl give their text column, .txt and a
        // name without an extension one review per line, any other extension is refused.
        read(&name, read_records(&name, &args.read.options(None)?))?;
    }
    if args.input.is_none() && args.texts.is_empty() {
        let mut bytes = Vec::new();
        std::io::stdin().lock().read_to_end(&mut bytes).context("cannot read standard input")?;
        read("standard input", parse_records("<stdin>", &bytes, &args.read.options(Some(Format::Txt))?))?;
    }
    match skipped_blank {
        0 => {}
        1 => eprintln!("skipped 1 blank review"),
        n => eprintln!("skipped {n} blank reviews"),
    }
    texts.extend(args.texts.iter().cloned());
    // Classify in chunks so that output streams on long inputs.
    for chunk in texts.chunks(256) {
        emit(chunk)?;
    }
    Ok(())
}

fn finetune_cmd(args: FinetuneArgs) -> Result<()> {
    let options = recipe::finetune_options_with(&as_options(&args.options)?, Spelling::Snake)?;
    check_out(&args.out)?;
    let bundle = load_bundle(&args.model)?;
    let data = load_data(&args.data, &args.read)?;
    let valid = args.valid.as_deref().map(|p| load_data(p, &args.read)).transpose()?;
    let classes_before = bundle.manifest.labels.len();
    let valid_examples = valid.map(|v| v.examples).unwrap_or_default();
    let (mut bundle, done) = recipe::finetune(
        &bundle,
        &args.model.display().to_string(),
        &args.data.display().to_string(),
        &data,
        &valid_examples,
        args.add_labels,
        &options,
        &mut progress_printer(),
    )?;
    if let Some(c) = &done.calibration {
        eprintln!("{}", recipe::calibration_line(c));
    }
    if !done.added_labels.is_empty() {
        eprintln!(
            "added labels: {} (the model grew from {} to {} classes)",
            done.added_labels.join(", "),
            classes_before,
            bundle.manifest.labels.len()
        );
    }
    if let Some(training) = bundle.manifest.training.as_object_mut() {
        training.insert("command".into(), std::env::args().collect::<Vec<_>>().join(" ").into());
    }
    let file = bundle.save(&args.out, args.precision)?;
    eprintln!("wrote {}", file.display());
    Ok(())
}
