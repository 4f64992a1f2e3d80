//! Text → probabilities with a loaded bundle. The browser calls the same `encode` and
//! `probabilities_tensor`, reading the result asynchronously.

use std::collections::BTreeMap;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use serde::Serialize;

use crate::bundle::{Bundle, Manifest};
use crate::model::{logits_of, rows_of};
use crate::scores::argmax;
use crate::vocab::{UNK_ID, encode, encode_tokens};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    pub label: String,
    pub score: f32,
    pub probs: BTreeMap<String, f32>,
}

/// One token of an explained text and its importance for the predicted label.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenWeight {
    /// The token as the model reads it (normalised: "ＡＢＣ" is "abc").
    pub token: String,
    /// How much the predicted label's probability falls when this token is occluded.
    pub weight: f32,
    /// The characters of the original text the token came from, `start..end` in Unicode
    /// scalar values ([`crate::tokenizer::SpannedToken::span`]): what a display highlights.
    /// Absent (serialised as no field) only where the text's normalisation cannot be traced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<usize>,
}

/// A bundle on the device it runs on. The fields are private so that the bundle is always on
/// `device`: [`Classifier::new`] and [`Classifier::replace_bundle`] move it there.
pub struct Classifier {
    bundle: Bundle,
    device: Device,
}

impl Classifier {
    pub fn new(bundle: Bundle, device: Device) -> Self {
        let bundle = bundle.to_device(&device);
        Classifier { bundle, device }
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    pub fn manifest(&self) -> &Manifest {
        &self.bundle.manifest
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The bundle, still on this classifier's device.
    pub fn into_bundle(self) -> Bundle {
        self.bundle
    }

    /// Swaps in `bundle` (a fine-tuned one, say), moved to this classifier's device.
    pub fn replace_bundle(&mut self, bundle: Bundle) {
        self.bundle = bundle.to_device(&self.device);
    }

    pub fn labels(&self) -> &[String] {
        &self.bundle.manifest.labels
    }

    pub fn tokens(&self, text: &str) -> Vec<String> {
        self.bundle.manifest.tokenizer.tokenize(text)
    }

    /// Token ids of `text` (see [`encode`]).
    pub fn encode(&self, text: &str) -> Vec<usize> {
        encode(&self.bundle.manifest.tokenizer, &self.bundle.manifest.vocab, text)
    }

    /// Raw (uncalibrated) class logits for a batch of encoded texts, `[batch, classes]`.
    pub fn logits_tensor(&self, ids: &[Vec<usize>]) -> Tensor<2> {
        let batch = self.bundle.model.batch(ids, &self.device);
        self.bundle.model.forward(&batch)
    }

    /// Calibrated probabilities for a batch of encoded texts, `[batch, classes]`:
    /// `softmax(logits / T)` with the bundle's temperature `T`. Every path (CLI, browser,
    /// widget) reads probabilities through here.
    pub fn probabilities_tensor(&self, ids: &[Vec<usize>]) -> Tensor<2> {
        let logits = self.logits_tensor(ids);
        let temperature = self.bundle.manifest.temperature;
        softmax(if temperature == 1.0 { logits } else { logits / temperature }, 1)
    }

    /// Raw logits for each encoded text, in input order (for fitting the temperature).
    pub fn logits_of(&self, encoded: &[Vec<usize>]) -> Vec<Vec<f32>> {
        logits_of(&self.bundle.model, encoded, &self.device)
    }

    /// Probabilities for each text, in input order.
    pub fn probabilities(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let encoded: Vec<Vec<usize>> = texts.iter().map(|t| self.encode(t)).collect();
        self.probabilities_of(&encoded)
    }

    /// Probabilities for each encoded text, in input order.
    pub fn probabilities_of(&self, encoded: &[Vec<usize>]) -> Vec<Vec<f32>> {
        rows_of(encoded, |ids| self.probabilities_tensor(ids))
    }

    /// The prediction for `text` and what drove it: for each token, how much the predicted
    /// label's probability falls when that token alone is replaced by `<unk>` (occlusion).
    /// Positive weights support the label, negative ones speak against it.
    pub fn explain(&self, text: &str) -> (Prediction, Vec<TokenWeight>) {
        let occlusion = self.occlusion(text);
        let probs = self.probabilities_of(&occlusion.variants);
        occlusion.weigh(self, &probs)
    }

    /// The inputs [`Classifier::explain`] scores; the browser scores them asynchronously.
    pub fn occlusion(&self, text: &str) -> Occlusion {
        let spanned = self.bundle.manifest.tokenizer.tokenize_spans(text);
        let spans = spanned.iter().map(|s| s.span).collect();
        let tokens: Vec<String> = spanned.into_iter().map(|s| s.token).collect();
        let ids = encode_tokens(&self.bundle.manifest.vocab, &tokens);
        let mut variants = vec![ids.clone()];
        if !tokens.is_empty() {
            variants.extend((0..ids.len()).map(|i| {
                let mut occluded = ids.clone();
                occluded[i] = UNK_ID;
                occluded
            }));
        }
        Occlusion { tokens, spans, variants }
    }

    pub fn prediction(&self, probs: &[f32]) -> Prediction {
        let best = argmax(probs);
        Prediction {
            label: self.labels()[best].clone(),
            score: probs[best],
            probs: self.labels().iter().cloned().zip(probs.iter().copied()).collect(),
        }
    }

    pub fn predict(&self, texts: &[&str]) -> Vec<Prediction> {
        self.probabilities(texts).iter().map(|p| self.prediction(p)).collect()
    }
}

/// A text's tokens and the id sequences that explain it: the text itself, then the text with
/// each token in turn replaced by `<unk>`.
pub struct Occlusion {
    pub tokens: Vec<String>,
    /// Each token's span of the original text (see [`TokenWeight::start`]).
    pub spans: Vec<Option<(usize, usize)>>,
    pub variants: Vec<Vec<usize>>,
}

impl Occlusion {
    /// The prediction and token weights, given the probabilities of every variant.
    pub fn weigh(self, classifier: &Classifier, probs: &[Vec<f32>]) -> (Prediction, Vec<TokenWeight>) {
        let prediction = classifier.prediction(&probs[0]);
        let class = classifier.labels().iter().position(|l| *l == prediction.label).expect("predicted label is known");
        let weights = self
            .tokens
            .into_iter()
            .zip(self.spans)
            .zip(&probs[1..])
            .map(|((token, span), p)| TokenWeight {
                token,
                weight: probs[0][class] - p[class],
                start: span.map(|(start, _)| start),
                end: span.map(|(_, end)| end),
            })
            .collect();
        (prediction, weights)
    }
}
