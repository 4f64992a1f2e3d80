//! ULMFiT-style pretraining: the encoder with a next-token head, trained on unlabelled text
//! before classification.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::nn::{Linear, LinearConfig};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};

use super::{Encoded, Event, TrainOptions, batches};
use crate::error::{Error, Result};
use crate::model::SentimentModel;
use crate::rng::SplitMix64;
use crate::vocab::{PAD_ID, UNK_ID};

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
