//! Behaviour of the shared model: it learns, it round-trips through a bundle, padding does not
//! change answers, the fused recurrence matches the reference, bad bundles are refused with a
//! message, and fine-tuning can add a class.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor};
use xinsheng_core::bundle::{Bundle, Manifest, Precision};
use xinsheng_core::data::Dataset;
use xinsheng_core::data::Example;
use xinsheng_core::data::TeacherRow;
use xinsheng_core::recipe::{calibrate, finetune};
use xinsheng_core::train::{Distillation, Encoded, Freeze, TrainOptions, Trainer, attach_teacher, fit, with_labels_of};
use xinsheng_core::vocab::Bigrams;
use xinsheng_core::{
    Arch, Classifier, ModelConfig, Pooling, Recurrence, SentimentModel, Tokenizer, TokenizerKind, Vocab,
};

const POSITIVE: &[&str] = &["很好", "非常好", "质量好", "喜欢", "好用", "满意", "很满意", "推荐", "不错", "好评"];
const NEGATIVE: &[&str] = &["很差", "太差了", "质量差", "失望", "难用", "不满意", "退货", "垃圾", "糟糕", "差评"];

fn examples() -> Vec<Example> {
    let pos = POSITIVE.iter().map(|t| Example { label: "正面".into(), text: t.to_string() });
    let neg = NEGATIVE.iter().map(|t| Example { label: "负面".into(), text: t.to_string() });
    pos.chain(neg).collect()
}

fn labels() -> Vec<String> {
    vec!["正面".to_string(), "负面".to_string()]
}

fn config(arch: Arch, bidirectional: bool, layers: usize, vocab: &Vocab) -> ModelConfig {
    ModelConfig {
        arch,
        bidirectional,
        vocab_size: vocab.len(),
        embed_dim: 16,
        hidden: 16,
        layers,
        dropout: 0.0,
        num_classes: 2,
        bigram_vocab_size: 0,
        bigram_dim: 0,
        pooling: Default::default(),
    }
}

/// A fresh bundle over the toy vocabulary.
fn bundle(arch: Arch, bidirectional: bool, layers: usize) -> Bundle {
    let tokenizer = Tokenizer::new(TokenizerKind::Char, 32);
    let tokens: Vec<Vec<String>> = examples().iter().map(|e| tokenizer.tokenize(&e.text)).collect();
    let vocab = Vocab::build(tokens.iter().map(Vec::as_slice), 1, 100);
    let config = config(arch, bidirectional, layers, &vocab);
    let device = Device::flex();
    device.seed(7);
    Bundle { model: config.init(&device), manifest: Manifest::new(config, tokenizer, labels(), vocab) }
}

/// A fresh bundle whose head also sees the recurrent layer's final states.
fn bundle_with_final_states(arch: Arch, bidirectional: bool, layers: usize) -> Bundle {
    let Bundle { mut manifest, .. } = bundle(arch, bidirectional, layers);
    manifest.config.pooling = Pooling::MeanMaxLast;
    let device = Device::flex();
    device.seed(7);
    Bundle { model: manifest.config.init(&device), manifest }
}

/// A bundle whose model also reads character bigrams.
fn bundle_with_bigrams(arch: Arch) -> Bundle {
    let Bundle { mut manifest, .. } = bundle(arch, true, 1);
    let encode = |t: &str| xinsheng_core::vocab::encode(&manifest.tokenizer, &manifest.vocab, t);
    let ids: Vec<Vec<usize>> = examples().iter().map(|e| encode(&e.text)).collect();
    let bigrams = Bigrams::build(ids.iter().map(Vec::as_slice), 1, 100);
    manifest.config.bigram_vocab_size = bigrams.len();
    manifest.config.bigram_dim = 8;
    manifest.bigrams = Some(bigrams.clone());
    Bundle { model: manifest.config.init(&Device::flex()).with_bigrams(Some(bigrams)), manifest }
}

fn encoded(classifier: &Classifier, examples: &[Example]) -> Encoded {
    Encoded::new(&|t| classifier.encode(t), classifier.labels(), examples, "test").unwrap()
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

const FIXED_TEXTS: &[&str] = &["很好", "太差了", "", "质量不错但是物流很慢", "😀", "This is great"];

#[test]
fn every_architecture_learns_a_tiny_dataset() {
    let cases = [
        (Arch::Rnn, false, 1, false),
        (Arch::Lstm, false, 1, false),
        (Arch::Gru, true, 1, false),
        (Arch::Lstm, true, 2, false),
        (Arch::Gru, true, 1, true),
    ];
    for (arch, bidirectional, layers, with_bigrams) in cases {
        let bundle = if with_bigrams { bundle_with_bigrams(arch) } else { bundle(arch, bidirectional, layers) };
        let classifier = Classifier::new(bundle, Device::flex());
        let data = encoded(&classifier, &examples());
        let all: Vec<usize> = (0..data.len()).collect();
        let mut trainer = Trainer::new(classifier.bundle().model.clone(), 1e-2, Freeze::None);
        let mut losses = Vec::new();
        let mut accuracy = 0.0;
        for _ in 0..60 {
            let (loss, correct) = trainer.step(&data, &all);
            losses.push(loss.into_scalar::<f32>());
            accuracy = correct.into_scalar::<i64>() as f32 / data.len() as f32;
        }
        let name = format!(
            "{arch}{}x{layers}{}",
            if bidirectional { " bi" } else { "" },
            if with_bigrams { " +bigrams" } else { "" }
        );
        assert!(losses[59] < 0.25 * losses[0], "{name}: loss {} → {}", losses[0], losses[59]);
        assert!(losses[0] > 0.5, "{name}: starts near chance, loss {}", losses[0]);
        assert_eq!(accuracy, 1.0, "{name}: fits its training data");
    }
}

#[test]
fn fit_keeps_the_best_epoch_and_reports_progress() {
    let classifier = Classifier::new(bundle(Arch::Gru, false, 1), Device::flex());
    let data = encoded(&classifier, &examples());
    let options = TrainOptions {
        epochs: 30,
        batch_size: 8,
        lr: 1e-2,
        seed: 1,
        patience: 3,
        freeze: Freeze::None,
        ..TrainOptions::default()
    };
    let (mut batches, mut scores) = (0, Vec::new());
    let model = classifier.bundle().model.clone();
    let fitted =
        fit(model.clone(), &data, std::slice::from_ref(&data), classifier.labels(), &options, &mut |e| match e {
            xinsheng_core::train::Event::Batch { .. } => batches += 1,
            xinsheng_core::train::Event::Epoch { score, .. } => scores.push(score.unwrap()),
            _ => {}
        })
        .unwrap();
    // The kept epoch is the first with the best score; training stops `patience` epochs later.
    let best = scores.iter().copied().fold(f64::MIN, f64::max);
    let kept = scores.iter().position(|&s| s == best).unwrap() + 1;
    assert_eq!(best, 1.0, "the toy data is learnt: {scores:?}");
    assert!(kept < scores.len(), "early stopping ran past the best epoch: {scores:?}");
    assert_eq!(fitted.epochs_run, kept + options.patience, "{scores:?}");
    assert_eq!(scores.len(), fitted.epochs_run);
    assert_eq!(batches, fitted.epochs_run * 3, "20 examples in batches of 8: 3 per epoch");
    assert_eq!(fitted.score, Some(best));
    // The weights kept are that epoch's: the same seed run for exactly `kept` epochs (without
    // validation, which keeps the last) ends on the same weights.
    let until_kept = TrainOptions { epochs: kept, ..options.clone() };
    let last = fit(model, &data, &[], classifier.labels(), &until_kept, &mut |_| {}).unwrap();
    let device = Device::flex();
    let logits = |m: &SentimentModel| xinsheng_core::model::logits_of(m, &data.ids, &device);
    assert_eq!(logits(&fitted.model), logits(&last.model));
}

#[test]
fn padding_does_not_change_predictions() {
    for bundle in [
        bundle(Arch::Rnn, false, 1),
        bundle(Arch::Lstm, true, 2),
        bundle(Arch::Gru, true, 1),
        bundle_with_bigrams(Arch::Gru),
        bundle_with_final_states(Arch::Gru, true, 1),
        bundle_with_final_states(Arch::Lstm, false, 2),
    ] {
        let classifier = Classifier::new(bundle, Device::flex());
        let together = classifier.probabilities(FIXED_TEXTS);
        let alone: Vec<Vec<f32>> = FIXED_TEXTS.iter().map(|t| classifier.probabilities(&[t]).remove(0)).collect();
        assert!(
            max_abs_diff(&together, &alone) < 1e-5,
            "batched vs alone differ by {}",
            max_abs_diff(&together, &alone)
        );
    }
}

/// Every parameter's gradient, flattened, in module order.
fn gradients(model: &SentimentModel, grads: &burn::tensor::Gradients) -> Vec<Vec<f32>> {
    struct Collect<'a>(&'a burn::tensor::Gradients, Vec<Vec<f32>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad = param.val().grad(self.0).map(|g| g.into_data().try_to_vec::<f32>().unwrap());
            self.1.push(grad.unwrap_or_default());
        }
    }
    let mut collect = Collect(grads, Vec::new());
    model.visit(&mut collect);
    collect.1
}

/// The fused recurrence against the step-by-step reference on `device`, on a padded batch of
/// mixed lengths (empty included): the same logits and the same gradient for every parameter,
/// for every cell, uni- and bidirectional, one and two layers, pooled with and without the
/// final states.
fn assert_fused_matches_reference(device: &Device) {
    for arch in [Arch::Rnn, Arch::Lstm, Arch::Gru] {
        for (bidirectional, layers, finals) in [(false, 1, false), (true, 2, false), (true, 1, true)] {
            let Bundle { model, manifest } = if finals {
                bundle_with_final_states(arch, bidirectional, layers)
            } else {
                bundle(arch, bidirectional, layers)
            };
            let model = model.to_device(device).train();
            // 26 reviews: enough for the CPU's fused path to split the batch across threads, and
            // for WebGPU's tiles of 8 sequences to end in a partial one; and a single review
            // (WebGPU's one-sequence kernel).
            let texts = examples().into_iter().map(|e| e.text).chain(FIXED_TEXTS.iter().map(|t| t.to_string()));
            let all: Vec<Vec<usize>> =
                texts.map(|t| xinsheng_core::vocab::encode(&manifest.tokenizer, &manifest.vocab, &t)).collect();
            for ids in [all.clone(), vec![all[0].clone()]] {
                let run = |recurrence: Recurrence| {
                    let model = model.clone().with_recurrence(recurrence);
                    let logits = model.forward(&model.batch(&ids, device));
                    // A loss that weighs every logit differently, so no gradient cancels out.
                    let [rows, classes] = logits.dims();
                    let weights =
                        Tensor::<1, Int>::arange(0..(rows * classes) as i64, device).float().reshape([rows, classes]);
                    let grads = (logits.clone() * (weights + 1.0)).sum().backward();
                    (logits.into_data().try_to_vec::<f32>().unwrap(), gradients(&model, &grads))
                };
                let (fused_logits, fused_grads) = run(Recurrence::Fused);
                let (reference_logits, reference_grads) = run(Recurrence::Reference);
                let case = format!(
                    "{arch}, bidirectional {bidirectional}, {layers} layers, final states {finals}, batch {}",
                    ids.len()
                );
                let diff = fused_logits.iter().zip(&reference_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-4, "{case}: logits differ by {diff}");
                assert_eq!(fused_grads.len(), reference_grads.len());
                for (i, (fused, reference)) in fused_grads.iter().zip(&reference_grads).enumerate() {
                    assert_eq!(fused.len(), reference.len(), "{case}: parameter {i} has no gradient in one of them");
                    assert!(!fused.is_empty(), "{case}: parameter {i} got no gradient");
                    let diff = fused.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    assert!(diff < 1e-4, "{case}: gradient of parameter {i} differs by {diff}");
                }
                assert!(fused_grads.iter().flatten().any(|g| g.abs() > 1e-3), "{case}: gradients are all ~0");
            }
        }
    }
}

#[test]
fn fused_recurrence_matches_the_reference_cell() {
    assert_fused_matches_reference(&Device::flex().autodiff());
}

/// The CubeCL kernels (the browser's WebGPU path), natively on wgpu: over lavapipe on a
/// machine without a GPU (Debian's mesa-vulkan-drivers).
#[cfg(feature = "wgpu")]
#[test]
fn fused_recurrence_kernels_on_wgpu_match_the_reference_cell() {
    use burn::tensor::DeviceKind;
    assert!(xinsheng_core::recurrence::fused_on(&Device::wgpu(DeviceKind::Cpu)));
    assert_fused_matches_reference(&Device::wgpu(DeviceKind::Cpu).autodiff());
}

#[test]
fn bundles_round_trip() {
    let original = bundle_with_bigrams(Arch::Gru);
    let bytes = original.to_bytes(Precision::F32).unwrap();
    let classifier = Classifier::new(original, Device::flex());
    let reloaded = Classifier::new(Bundle::from_bytes("f32", bytes, &Device::flex()).unwrap(), Device::flex());
    let (a, b) = (classifier.probabilities(FIXED_TEXTS), reloaded.probabilities(FIXED_TEXTS));
    assert!(max_abs_diff(&a, &b) < 1e-4, "f32 round trip differs by {}", max_abs_diff(&a, &b));
    assert_eq!(classifier.predict(FIXED_TEXTS), reloaded.predict(FIXED_TEXTS));

    // Half precision: close to the original, and stable once saved.
    let half = Bundle::from_bytes("f16", reloaded.bundle().to_bytes(Precision::F16).unwrap(), &Device::flex()).unwrap();
    let again = Bundle::from_bytes("f16 again", half.to_bytes(Precision::F16).unwrap(), &Device::flex()).unwrap();
    let (half, again) = (Classifier::new(half, Device::flex()), Classifier::new(again, Device::flex()));
    let (h, g) = (half.probabilities(FIXED_TEXTS), again.probabilities(FIXED_TEXTS));
    assert!(max_abs_diff(&a, &h) < 1e-2);
    assert_eq!(h, g);
    assert_eq!(half.bundle().manifest.vocab.len(), classifier.bundle().manifest.vocab.len());
}

#[test]
fn bad_bundles_are_refused_with_a_reason() {
    let device = Device::flex();
    let bytes = bundle(Arch::Lstm, false, 1).to_bytes(Precision::F16).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"definitely not a model".to_vec()),
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("cut at the end", bytes[..bytes.len() - 3].to_vec()),
    ];
    for (name, data) in cases {
        let err =
            Bundle::from_bytes(name, data, &device).err().unwrap_or_else(|| panic!("{name} was accepted")).to_string();
        assert!(err.starts_with(&format!("model bundle {name}:")), "{err}");
    }
    let missing = Bundle::load(std::path::Path::new("/nonexistent/bundle"), &device).err().unwrap().to_string();
    assert!(missing.contains("not found"), "{missing}");

    // A manifest claiming absurd sizes (a hostile model URL) is refused before any allocation:
    // this test would abort on an out-of-memory allocation otherwise.
    let absurd = |change: &dyn Fn(&mut Manifest)| {
        let mut b = bundle(Arch::Lstm, true, 1);
        change(&mut b.manifest);
        let bytes = b.to_bytes(Precision::F16).unwrap();
        Bundle::from_bytes("hostile", bytes, &device).err().expect("accepted").to_string()
    };
    let huge = absurd(&|m| m.config.hidden = 1_000_000_000);
    assert!(huge.contains("the manifest describes at least"), "{huge}");
    let wide = absurd(&|m| m.config.embed_dim = usize::MAX / 2);
    assert!(wide.contains("the manifest describes at least"), "{wide}");
    let deep = absurd(&|m| m.config.layers = usize::MAX);
    assert!(deep.contains("the manifest describes at least"), "{deep}");
    let classes = absurd(&|m| {
        m.labels = (0..1_000_000).map(|i| i.to_string()).collect();
        m.config.num_classes = m.labels.len();
    });
    assert!(classes.contains("the manifest describes at least"), "{classes}");
    let vocab = absurd(&|m| m.config.vocab_size = 1_000_000_000);
    assert!(vocab.contains("vocabulary entries for an embedding of 1000000000"), "{vocab}");
}

#[test]
fn finetuning_adds_a_neutral_class_and_learns_it() {
    let classifier = Classifier::new(bundle(Arch::Lstm, false, 1), Device::flex());
    let base_head = classifier.bundle().model.head.weight.val().into_data().try_into_vec::<f32>().unwrap();
    let mut data = examples();
    let neutral = ["一般", "还行吧", "中规中矩", "普普通通"];
    data.extend(neutral.iter().map(|t| Example { label: "中立".into(), text: t.to_string() }));
    let options = TrainOptions {
        epochs: 80,
        batch_size: 32,
        lr: 1e-2,
        seed: 3,
        patience: 80,
        freeze: Freeze::None,
        ..TrainOptions::default()
    };

    // The head grows and the old classes start from their old weights (a learning rate of 0,
    // which would show it through `finetune`, is refused by `TrainOptions::validate`).
    let grown = with_labels_of(Classifier::new(bundle(Arch::Lstm, false, 1), Device::flex()).into_bundle(), &data, 3);
    let grown_head = grown.model.head.weight.val().into_data().try_into_vec::<f32>().unwrap();
    assert_eq!(grown.manifest.labels, ["正面", "负面", "中立"]);
    for row in 0..16 {
        assert_eq!(grown_head[row * 3..row * 3 + 2], base_head[row * 2..row * 2 + 2], "old class weights kept");
    }

    let data = Dataset { lines: (1..=data.len()).collect(), examples: data, skipped_empty: 0 };
    let base = classifier.into_bundle();
    let (tuned, done) = finetune(&base, "toy", "examples", &data, &[], true, &options, &mut |_| {}).unwrap();
    assert_eq!(done.added_labels, ["中立"]);
    // The tuned bundle records its own fine-tune, the base's record under `base`.
    let record = &tuned.manifest.training;
    assert_eq!(record["finetuned_from"], "toy");
    assert_eq!(record["examples"], 24);
    assert_eq!(record["epochs_run"], 80);
    assert_eq!(record["options"]["lr"], 1e-2);
    assert_eq!(record["base"], base.manifest.training);
    assert!(tuned.manifest.metrics.is_none(), "no validation data: no metrics (the base's do not describe it)");
    let tuned = Classifier::new(tuned, Device::flex());
    for p in tuned.predict(&neutral) {
        assert_eq!(p.label, "中立", "{p:?}");
    }
    assert_eq!(tuned.predict(&["很好"])[0].label, "正面");
}

#[test]
fn explain_points_at_the_words_that_carry_the_sentiment() {
    let classifier = Classifier::new(bundle(Arch::Gru, true, 1), Device::flex());
    let data = encoded(&classifier, &examples());
    let options = TrainOptions {
        epochs: 40,
        batch_size: 20,
        lr: 1e-2,
        seed: 5,
        patience: 40,
        freeze: Freeze::None,
        ..TrainOptions::default()
    };
    let fitted =
        fit(classifier.bundle().model.clone(), &data, &[], classifier.labels(), &options, &mut |_| {}).unwrap();
    let trained =
        Classifier::new(Bundle { manifest: classifier.bundle().manifest.clone(), model: fitted.model }, Device::flex());
    // "很" opens both "很好" and "很差"; "好" and "差" decide.
    for (text, label, decisive) in [("很好", "正面", "好"), ("很差", "负面", "差")] {
        let (prediction, weights) = trained.explain(text);
        assert_same_prediction(&prediction, &trained.predict(&[text])[0]);
        assert_eq!(prediction.label, label);
        let tokens: Vec<&str> = weights.iter().map(|w| w.token.as_str()).collect();
        assert_eq!(tokens, ["很", decisive]);
        assert!(weights[1].weight > weights[0].weight, "{text}: {weights:?}");
    }
    let (prediction, weights) = trained.explain("");
    assert!(weights.is_empty());
    assert_same_prediction(&prediction, &trained.predict(&[""])[0]);
}

/// Same label, and probabilities equal up to rounding (a batch of one and a batch of several
/// sum in different orders).
fn assert_same_prediction(a: &xinsheng_core::Prediction, b: &xinsheng_core::Prediction) {
    assert_eq!(a.label, b.label);
    for (label, p) in &a.probs {
        assert!((p - b.probs[label]).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

/// log-softmax of one row of logits, divided by `t` first.
fn log_softmax_at(logits: &[f32], t: f64) -> Vec<f64> {
    let p = xinsheng_core::scores::softmax_at(logits, t);
    p.into_iter().map(f64::ln).collect()
}

#[test]
fn distillation_loss_is_the_documented_mix_of_kl_and_cross_entropy() {
    let classifier = Classifier::new(bundle(Arch::Gru, false, 1), Device::flex());
    let texts = ["很好", "太差了", "还行吧"];
    let logits = classifier.logits_of(&texts.iter().map(|t| classifier.encode(t)).collect::<Vec<_>>());
    // Gold + teacher, gold alone, and a transfer text known only through the teacher.
    let gold = [
        Example { label: "正面".into(), text: texts[0].into() },
        Example { label: "负面".into(), text: texts[1].into() },
    ];
    let rows = [
        TeacherRow { text: texts[0].into(), label: None, probs: vec![0.8, 0.2] },
        TeacherRow { text: texts[2].into(), label: None, probs: vec![0.3, 0.7] },
        TeacherRow { text: "一般".into(), label: None, probs: vec![0.5, 0.5] },
    ];
    let encode = |t: &str| classifier.encode(t);
    let held_out = [Example { label: "正面".into(), text: "一般".into() }];
    let (data, stats) = attach_teacher(encoded(&classifier, &gold), &gold, &rows, &held_out, &encode);
    assert_eq!((stats.matched, stats.unmatched, stats.transfer, stats.held_out), (1, 1, 1, 1));
    assert_eq!(data.len(), 3);

    let (alpha, t) = (0.7, 2.0);
    let kl = |teacher: &[f64], row: &[f32]| -> f64 {
        let soft: Vec<f64> = teacher.iter().map(|p| p.powf(1.0 / t)).collect();
        let sum: f64 = soft.iter().sum();
        let log_q = log_softmax_at(row, t);
        soft.iter().zip(&log_q).map(|(p, q)| p / sum * ((p / sum).ln() - q)).sum()
    };
    let ce = |class: usize, row: &[f32]| -log_softmax_at(row, 1.0)[class];
    let expected = (alpha * t * t * kl(&[0.8, 0.2], &logits[0])
        + (1.0 - alpha) * ce(0, &logits[0])
        + ce(1, &logits[1])
        + alpha * t * t * kl(&[0.3, 0.7], &logits[2]))
        / 3.0;
    let distill = Distillation { weight: alpha, temperature: t };
    let mut trainer = Trainer::with_distillation(classifier.bundle().model.clone(), 0.0, Freeze::None, distill);
    let (loss, correct) = trainer.step(&data, &[0, 1, 2]);
    let loss = loss.into_scalar::<f32>() as f64;
    assert!((loss - expected).abs() < 1e-4, "loss {loss}, expected {expected}");
    // The transfer text counts as right when the student agrees with the teacher.
    let agrees = |row: &[f32], class: usize| usize::from(row[class] > row[1 - class]);
    let want = agrees(&logits[0], 0) + agrees(&logits[1], 1) + agrees(&logits[2], 1);
    assert_eq!(correct.into_scalar::<i64>() as usize, want);
}

#[test]
fn a_student_learns_what_only_the_teacher_knows() {
    // Gold data never shows 棒 or 坑; the teacher's transfer texts do.
    let mut vocab_texts = examples();
    vocab_texts.extend(["棒", "坑"].map(|t| Example { label: "正面".into(), text: t.into() }));
    let tokenizer = Tokenizer::new(TokenizerKind::Char, 32);
    let tokens: Vec<Vec<String>> = vocab_texts.iter().map(|e| tokenizer.tokenize(&e.text)).collect();
    let vocab = Vocab::build(tokens.iter().map(Vec::as_slice), 1, 100);
    let config = config(Arch::Gru, true, 1, &vocab);
    let device = Device::flex();
    device.seed(11);
    let bundle = Bundle { model: config.init(&device), manifest: Manifest::new(config, tokenizer, labels(), vocab) };
    let classifier = Classifier::new(bundle, Device::flex());
    let encode = |t: &str| classifier.encode(t);
    let rows: Vec<TeacherRow> = ["棒", "真棒", "很棒", "太棒了"]
        .iter()
        .map(|t| TeacherRow { text: t.to_string(), label: None, probs: vec![0.95, 0.05] })
        .chain(["坑", "真坑", "很坑", "太坑了"].iter().map(|t| TeacherRow {
            text: t.to_string(),
            label: None,
            probs: vec![0.05, 0.95],
        }))
        .collect();
    let (data, _) = attach_teacher(encoded(&classifier, &examples()), &examples(), &rows, &[], &encode);
    let options = TrainOptions {
        epochs: 40,
        batch_size: 28,
        lr: 1e-2,
        seed: 5,
        patience: 40,
        distill: Distillation { weight: 0.8, temperature: 1.0 },
        ..TrainOptions::default()
    };
    let fitted =
        fit(classifier.bundle().model.clone(), &data, &[], classifier.labels(), &options, &mut |_| {}).unwrap();
    let trained =
        Classifier::new(Bundle { manifest: classifier.bundle().manifest.clone(), model: fitted.model }, Device::flex());
    // Texts the teacher scored, and new ones made of the teacher-only characters.
    let labels: Vec<String> =
        trained.predict(&["太棒了", "太坑了", "棒棒", "坑坑"]).into_iter().map(|p| p.label).collect();
    assert_eq!(labels, ["正面", "负面", "正面", "负面"]);
}

#[test]
fn the_calibration_temperature_scales_every_probability_and_survives_a_round_trip() {
    let mut bundle = bundle(Arch::Gru, true, 1);
    let device = Device::flex();
    let plain =
        Classifier::new(Bundle { manifest: bundle.manifest.clone(), model: bundle.model.clone() }, device.clone());
    let ids: Vec<Vec<usize>> = FIXED_TEXTS.iter().map(|t| plain.encode(t)).collect();
    let logits = plain.logits_of(&ids);

    let data = encoded(&plain, &examples());
    let before = bundle.manifest.temperature;
    let fitted = calibrate(&mut bundle, &data, &device);
    // What the fit guarantees: the NLL of the calibration data does not rise. (ECE usually
    // falls too, but not for every model: the parallel tests share burn's seeded generator, so
    // this tiny model's initialisation varies, and for some the fitted temperature raised ECE.)
    let data_logits = plain.logits_of(&data.ids);
    let nll = |t: f64| xinsheng_core::calibration::nll(&data_logits, &data.labels, t);
    assert!(nll(fitted.temperature) <= nll(before) + 1e-9, "{fitted:?}");
    assert_eq!(bundle.manifest.temperature, fitted.temperature);

    bundle.manifest.temperature = 2.5;
    let bytes = bundle.to_bytes(Precision::F32).unwrap();
    let reloaded = Classifier::new(Bundle::from_bytes("t", bytes, &device).unwrap(), device.clone());
    assert_eq!(reloaded.bundle().manifest.temperature, 2.5);
    // A calibrated bundle is format version 2, which older builds refuse instead of misreading;
    // one that needs nothing new stays version 1.
    assert_eq!(reloaded.bundle().manifest.format_version, 2);
    let plain = Bundle { manifest: plain.bundle().manifest.clone(), model: plain.bundle().model.clone() };
    let plain = Bundle::from_bytes("plain", plain.to_bytes(Precision::F16).unwrap(), &device).unwrap();
    assert_eq!(plain.manifest.format_version, 1);
    let probs = reloaded.probabilities(FIXED_TEXTS);
    for (row, p) in logits.iter().zip(&probs) {
        let want = xinsheng_core::scores::softmax_at(row, 2.5);
        assert!((p[0] as f64 - want[0]).abs() < 1e-5, "{p:?} vs {want:?}");
    }

    let mut bad = reloaded.bundle().manifest.clone();
    bad.temperature = 0.0;
    let bytes = Bundle { manifest: bad, model: reloaded.bundle().model.clone() }.to_bytes(Precision::F16).unwrap();
    let err = Bundle::from_bytes("cold", bytes, &device).err().unwrap().to_string();
    assert!(err.contains("temperature must be a positive number"), "{err}");
}
