//! Training and inference throughput of the shipped model's architecture on this CPU.
//!
//!     cargo bench -p xinsheng-train --bench throughput
//!
//! Prints a markdown table (see docs/benchmarks.md): the fused recurrence against the
//! step-by-step reference cell, side by side. Each figure is the median of a few
//! repetitions; the ratios, measured in one process, are what to compare across machines.
//!
//! With `XINSHENG_BENCH_DUMP=FILE` it also writes the token ids it used and its figures as
//! JSON, so that `scripts/bench-keras` can run TensorFlow on exactly the same batches.

/// The CLI's allocator (see src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use burn::tensor::Device;
use xinsheng_core::bundle::Bundle;
use xinsheng_core::data::read_examples;
use xinsheng_core::rng::SplitMix64;
use xinsheng_core::train::{Encoded, Freeze, Trainer, batches};
use xinsheng_core::{Classifier, Recurrence};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    // As the CLI (src/main.rs, keep_freed_memory): mimalloc never returns freed memory to the OS.
    // SAFETY: mi_option_set only stores the value. 15 is mimalloc v3's mi_option_purge_delay.
    unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let device = Device::flex();
    let bundle = Bundle::load(format!("{root}/models/default").as_ref(), &device).expect("shipped model");
    let config = bundle.manifest.config.clone();
    let train = read_examples(&format!("{root}/data/train.tsv")).expect("training data");
    let valid = read_examples(&format!("{root}/data/valid.tsv")).expect("validation data");
    let classifier = Classifier::new(bundle, device.clone());
    let labels = classifier.labels().to_vec();
    let encode = |t: &str| classifier.encode(t);
    let train_set = Encoded::new(&encode, &labels, &train.examples[..2048], "train").unwrap();
    let texts: Vec<&str> = valid.examples.iter().map(|e| e.text.as_str()).collect();
    let mean_len = train_set.ids.iter().map(Vec::len).sum::<usize>() as f64 / train_set.len() as f64;

    println!(
        "architecture: {}{} x{}, embed {}, hidden {}, vocab {}; mean tokens per review {:.0}",
        if config.bidirectional { "bi-" } else { "" },
        config.arch,
        config.layers,
        config.embed_dim,
        config.hidden,
        config.vocab_size,
        mean_len
    );
    println!();

    // Fused and reference recurrences side by side, interleaved so that both see the same
    // machine load.
    let mut figures = [Vec::new(), Vec::new()];
    for rep in 0..3 {
        for (slot, recurrence) in [Recurrence::Reference, Recurrence::Fused].into_iter().enumerate() {
            let mut trainer = Trainer::new(config.init(&device).with_recurrence(recurrence), 1e-3, Freeze::None);
            let plan = batches(&train_set, 64, &mut SplitMix64::new(rep));
            let start = Instant::now();
            for indices in &plan {
                let (loss, _) = trainer.step(&train_set, indices);
                loss.into_scalar::<f32>();
            }
            let train_rate = train_set.len() as f64 / start.elapsed().as_secs_f64();

            let bundle = Bundle {
                model: classifier.bundle().model.clone().with_recurrence(recurrence),
                manifest: classifier.bundle().manifest.clone(),
            };
            let classifier = Classifier::new(bundle, device.clone());
            let start = Instant::now();
            classifier.probabilities(&texts);
            let batched = texts.len() as f64 / start.elapsed().as_secs_f64();
            let start = Instant::now();
            for t in &texts[..200] {
                classifier.probabilities(&[t]);
            }
            let single = 200.0 / start.elapsed().as_secs_f64();
            figures[slot].push([train_rate, batched, single]);
        }
    }
    let [reference, fused] = figures.map(|runs| {
        let column = |i: usize| median(runs.iter().map(|r: &[f64; 3]| r[i]).collect());
        [column(0), column(1), column(2)]
    });
    println!("| measure | reference cell | fused recurrence | speed-up |");
    println!("|---|---|---|---|");
    let names = [
        "training, batch 64 (samples/s)",
        "inference, batches of 64 (reviews/s)",
        "inference, one review at a time (reviews/s)",
    ];
    for (i, name) in names.into_iter().enumerate() {
        println!("| {name} | {:.0} | {:.0} | {:.2}x |", reference[i], fused[i], fused[i] / reference[i]);
    }
    println!("| single-review latency (ms) | {:.1} | {:.1} | |", 1000.0 / reference[2], 1000.0 / fused[2]);
    println!(
        "| estimated epoch over data/train.tsv (s) | {:.0} | {:.0} | |",
        13902.0 / reference[0],
        13902.0 / fused[0]
    );

    if let Ok(path) = std::env::var("XINSHENG_BENCH_DUMP") {
        let valid_ids: Vec<Vec<usize>> = texts.iter().map(|t| classifier.encode(t)).collect();
        let figures = |f: [f64; 3]| serde_json::json!({"train": f[0], "batched": f[1], "single": f[2]});
        let dump = serde_json::json!({
            "config": config,
            "train_ids": train_set.ids,
            "train_labels": train_set.labels,
            "valid_ids": valid_ids,
            "reference": figures(reference),
            "fused": figures(fused),
        });
        std::fs::write(&path, dump.to_string()).expect("write the benchmark dump");
    }
}
