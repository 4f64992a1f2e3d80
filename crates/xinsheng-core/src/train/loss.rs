//! The training loss (cross-entropy, with the teacher's term when distilling) and one
//! optimiser step.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::{Encoded, Freeze};
use crate::model::SentimentModel;

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
