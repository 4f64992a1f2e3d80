//! Embedding → stacked (bi)directional RNN / LSTM / GRU → pooling (mean and max over time,
//! optionally each direction's final state) → linear head.
//!
//! Where the device supports it ([`recurrence::fused_on`]: the CPU, and WebGPU with the `wgpu`
//! feature) each layer-direction is one fused operation over the real steps of the batch: the
//! input projection of every step in one matmul, then [`recurrence::recurrence`]. Otherwise,
//! and on request ([`Recurrence::Reference`], for tests and benchmarks), the step-by-step
//! reference cell runs over time-major lists of `[batch, features]` tensors, about 30 tensor
//! operations per step. Both leave the recurrent state unchanged on padded steps: a review gives
//! the same output alone or in a batch.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

pub use crate::arch::Arch;
use crate::recurrence::{self, recurrence};
use crate::rng::SplitMix64;
use crate::vocab::{Bigrams, PAD_ID};

/// Everything needed to rebuild the model's shapes; saved in every bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub bidirectional: bool,
    pub vocab_size: usize,
    pub embed_dim: usize,
    pub hidden: usize,
    pub layers: usize,
    pub dropout: f64,
    pub num_classes: usize,
    /// Rows of the bigram embedding (0: no bigram channel).
    #[serde(default)]
    pub bigram_vocab_size: usize,
    #[serde(default)]
    pub bigram_dim: usize,
    /// What the head sees of the recurrent outputs (bundles made before this option read as
    /// [`Pooling::MeanMax`]).
    #[serde(default)]
    pub pooling: Pooling,
}

/// How the recurrent outputs `[time, batch, width]` become the head's features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pooling {
    /// Mean and max over the real steps: `2 · width` features.
    #[default]
    MeanMax,
    /// Mean and max, plus each direction's final state (the forward direction at the last
    /// real step, the backward one at the first): `3 · width` features. The final states
    /// have read the whole review, so a verdict in its last sentence is not averaged away.
    MeanMaxLast,
}

impl Pooling {
    /// Head features per unit of recurrent output width.
    fn widths(self) -> usize {
        match self {
            Pooling::MeanMax => 2,
            Pooling::MeanMaxLast => 3,
        }
    }
}

crate::schema::choice!(Pooling, "pooling", [MeanMax => "mean-max", MeanMaxLast => "mean-max-last"]);

impl ModelConfig {
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab size", self.vocab_size),
            ("embedding size", self.embed_dim),
            ("hidden size", self.hidden),
            ("layers", self.layers),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.num_classes < 2 {
            return Err(format!("a classifier needs at least 2 labels, got {}", self.num_classes));
        }
        if self.bigram_vocab_size > 0 && self.bigram_dim == 0 {
            return Err("a bigram channel needs a bigram embedding size of at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }

    /// A lower bound on the number of weights this configuration has (embeddings, the
    /// recurrent matrices and the head; biases left out), computed without overflow. Bundle
    /// loading compares it with the file's size before allocating anything, so a manifest that
    /// claims absurd dimensions is refused instead of exhausting memory.
    pub fn min_parameters(&self) -> u128 {
        let (dirs, hidden, gates) = (self.directions() as u128, self.hidden as u128, self.arch.gates() as u128);
        let mut total = self.vocab_size as u128 * self.embed_dim as u128
            + self.bigram_vocab_size as u128 * self.bigram_dim() as u128
            + self.num_classes as u128 * hidden * dirs;
        for layer in 0..self.layers.min(1 << 16) as u128 {
            let input = if layer == 0 { (self.embed_dim + self.bigram_dim()) as u128 } else { hidden * dirs };
            total = total.saturating_add(dirs * gates * hidden * (input + hidden));
        }
        total.saturating_add((self.layers as u128).saturating_sub(1 << 16))
    }

    fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    fn bigram_dim(&self) -> usize {
        if self.bigram_vocab_size > 0 { self.bigram_dim } else { 0 }
    }

    /// A freshly initialised model; give it its bigram table with [`SentimentModel::with_bigrams`].
    pub fn init(&self, device: &Device) -> SentimentModel {
        let width = self.hidden * self.directions();
        let layers = (0..self.layers)
            .map(|i| {
                let input = if i == 0 { self.embed_dim + self.bigram_dim() } else { width };
                RecurrentLayer {
                    forward: Cell::new(self.arch, input, self.hidden, device),
                    backward: self.bidirectional.then(|| Cell::new(self.arch, input, self.hidden, device)),
                }
            })
            .collect();
        SentimentModel {
            embedding: EmbeddingConfig::new(self.vocab_size, self.embed_dim).init(device),
            bigram_embedding: (self.bigram_dim() > 0)
                .then(|| EmbeddingConfig::new(self.bigram_vocab_size, self.bigram_dim).init(device)),
            layers,
            dropout: DropoutConfig::new(self.dropout).init(),
            // Pooled recurrent outputs, and the mean bigram embedding.
            head: LinearConfig::new(self.pooling.widths() * width + self.bigram_dim(), self.num_classes).init(device),
            arch: self.arch,
            pooling: self.pooling,
            bigrams: None,
            recurrence: Recurrence::Fused,
        }
    }
}

/// One direction of one recurrent layer: all gates' input and hidden projections.
#[derive(Module, Debug)]
pub struct Cell {
    input: Linear,
    hidden: Linear,
}

impl Cell {
    fn new(arch: Arch, d_input: usize, d_hidden: usize, device: &Device) -> Self {
        let width = arch.gates() * d_hidden;
        Cell {
            input: LinearConfig::new(d_input, width).init(device),
            hidden: LinearConfig::new(d_hidden, width).init(device),
        }
    }

    /// Units of the recurrent state (the hidden projection's input width).
    fn hidden_size(&self) -> usize {
        self.hidden.weight.dims()[0]
    }

    /// The fused recurrence over packed `inputs` `[real steps, features]` (reversed when
    /// `reverse`): `[time, batch, hidden]`.
    fn run_fused(&self, arch: Arch, inputs: Tensor<2>, rows: Tensor<2>, reverse: bool) -> Tensor<3> {
        let bias_of = |linear: &Linear| match &linear.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([linear.weight.dims()[1]], &inputs.device()),
        };
        let (input_bias, hidden_bias) = (bias_of(&self.input), bias_of(&self.hidden));
        let projected = recurrence::projection(inputs, self.input.weight.val(), input_bias);
        recurrence(arch, reverse, projected, self.hidden.weight.val(), hidden_bias, rows)
    }

    /// The reference recurrence, step by step: runs over `inputs` (reversed when `reverse`),
    /// returning one output per step in the original order.
    fn run_reference(&self, arch: Arch, inputs: &[Tensor<2>], masks: &[Tensor<2>], reverse: bool) -> Vec<Tensor<2>> {
        let [batch, _] = inputs[0].dims();
        let d_hidden = self.hidden_size();
        let device = inputs[0].device();
        let mut h = Tensor::<2>::zeros([batch, d_hidden], &device);
        let mut c = h.clone();
        let mut outputs = vec![None; inputs.len()];
        let order: Box<dyn Iterator<Item = usize>> =
            if reverse { Box::new((0..inputs.len()).rev()) } else { Box::new(0..inputs.len()) };
        for t in order {
            let x = self.input.forward(inputs[t].clone());
            let hp = self.hidden.forward(h.clone());
            let (h_new, c_new) = match arch {
                Arch::Rnn => ((x + hp).tanh(), None),
                Arch::Lstm => {
                    let g = (x + hp).chunk(4, 1);
                    let (i, f, cand, o) =
                        (sigmoid(g[0].clone()), sigmoid(g[1].clone()), g[2].clone().tanh(), sigmoid(g[3].clone()));
                    let c_new = f * c.clone() + i * cand;
                    (o * c_new.clone().tanh(), Some(c_new))
                }
                Arch::Gru => {
                    // Reset applied after the hidden projection (as cuDNN and Keras' reset_after).
                    let xg = x.chunk(3, 1);
                    let hg = hp.chunk(3, 1);
                    let r = sigmoid(xg[0].clone() + hg[0].clone());
                    let z = sigmoid(xg[1].clone() + hg[1].clone());
                    let n = (xg[2].clone() + r * hg[2].clone()).tanh();
                    (n.clone() + z * (h.clone() - n), None)
                }
            };
            // Padded steps (mask 0) keep the previous state.
            let m = masks[t].clone();
            h = h.clone() + (h_new - h) * m.clone();
            if let Some(c_new) = c_new {
                c = c.clone() + (c_new - c) * m;
            }
            outputs[t] = Some(h.clone());
        }
        outputs.into_iter().map(|o| o.expect("every step visited")).collect()
    }
}

#[derive(Module, Debug)]
pub struct RecurrentLayer {
    forward: Cell,
    backward: Option<Cell>,
}

impl RecurrentLayer {
    /// Fused: the outputs of the forward cell and, if any, of the backward cell, kept apart.
    fn run_fused_split(&self, arch: Arch, inputs: Tensor<2>, rows: &Tensor<2>) -> (Tensor<3>, Option<Tensor<3>>) {
        let backward = self.backward.as_ref().map(|cell| cell.run_fused(arch, inputs.clone(), rows.clone(), true));
        (self.forward.run_fused(arch, inputs, rows.clone(), false), backward)
    }

    /// Reference: the outputs of the forward cell and, if any, of the backward cell, kept apart.
    fn run_reference_split(
        &self,
        arch: Arch,
        inputs: &[Tensor<2>],
        masks: &[Tensor<2>],
    ) -> (Vec<Tensor<2>>, Option<Vec<Tensor<2>>>) {
        let forward = self.forward.run_reference(arch, inputs, masks, false);
        let backward = self.backward.as_ref().map(|cell| cell.run_reference(arch, inputs, masks, true));
        (forward, backward)
    }
}

/// How the recurrent layers run: the fused operation (the default; it falls back to the
/// reference where the device lacks it) or the step-by-step reference, kept for tests and
/// benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recurrence {
    #[default]
    Fused,
    Reference,
}

#[derive(Module, Debug)]
pub struct SentimentModel {
    pub embedding: Embedding,
    pub bigram_embedding: Option<Embedding>,
    pub layers: Vec<RecurrentLayer>,
    dropout: Dropout,
    pub head: Linear,
    #[module(skip)]
    arch: Arch,
    #[module(skip)]
    pooling: Pooling,
    #[module(skip)]
    bigrams: Option<Arc<Bigrams>>,
    #[module(skip)]
    recurrence: Recurrence,
}

/// What the encoder produces for a batch, all `[time, batch, _]`: the last layer's outputs per
/// direction and the bigram embeddings (pooled separately).
struct Encoding {
    forward: Tensor<3>,
    backward: Option<Tensor<3>>,
    bigrams: Option<Tensor<3>>,
}

/// Token ids of several texts, padded into one time-major batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[time, batch]`
    pub tokens: Tensor<2, Int>,
    /// `[time, batch, 1]`: 1 for real tokens, 0 for padding.
    pub mask: Tensor<3>,
    /// `[batch, 1]`: the number of real tokens (at least 1).
    pub lengths: Tensor<2>,
    /// `[time, batch, 1]`: 1 at each sequence's last real step, 0 elsewhere.
    pub last: Tensor<3>,
    /// `[real tokens]`: the positions `t · batch + s` of the real tokens, time-major (the
    /// packed rows of [`recurrence::recurrence`]).
    pub packed: Tensor<1, Int>,
    /// `[time, batch]`: each step's packed row, -1 for padding.
    pub rows: Tensor<2>,
    /// `[time, batch]`: the bigram starting at each step, for models with a bigram channel.
    pub bigrams: Option<Tensor<2, Int>>,
}

impl Batch {
    /// Pads `sequences` (each non-empty) to the longest one.
    pub fn new(sequences: &[Vec<usize>], bigrams: Option<&Bigrams>, device: &Device) -> Batch {
        let batch = sequences.len();
        let time = sequences.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut ids = vec![PAD_ID as i64; time * batch];
        let mut mask = vec![0f32; time * batch];
        for (b, seq) in sequences.iter().enumerate() {
            for (t, &id) in seq.iter().enumerate() {
                ids[t * batch + b] = id as i64;
                mask[t * batch + b] = 1.0;
            }
        }
        let lengths: Vec<f32> = sequences.iter().map(|s| s.len().max(1) as f32).collect();
        let mut last = vec![0f32; time * batch];
        for (b, seq) in sequences.iter().enumerate() {
            last[(seq.len().max(1) - 1) * batch + b] = 1.0;
        }
        let (positions, rows) = recurrence::pack(&mask);
        let real = positions.len();
        let packed: Vec<i64> = positions.into_iter().map(|i| i as i64).collect();
        let bigrams = bigrams.map(|table| {
            let mut pair_ids = vec![PAD_ID as i64; time * batch];
            for (b, seq) in sequences.iter().enumerate() {
                for (t, id) in table.ids(seq).into_iter().enumerate() {
                    pair_ids[t * batch + b] = id as i64;
                }
            }
            Tensor::from_data(TensorData::new(pair_ids, [time, batch]), device)
        });
        Batch {
            bigrams,
            packed: Tensor::from_data(TensorData::new(packed, [real]), device),
            rows: Tensor::from_data(TensorData::new(rows, [time, batch]), device),
            tokens: Tensor::from_data(TensorData::new(ids, [time, batch]), device),
            mask: Tensor::from_data(TensorData::new(mask, [time, batch, 1]), device),
            last: Tensor::from_data(TensorData::new(last, [time, batch, 1]), device),
            lengths: Tensor::from_data(TensorData::new(lengths, [batch, 1]), device),
        }
    }
}

impl SentimentModel {
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Units per direction of the last recurrent layer.
    pub fn hidden_size(&self) -> usize {
        self.layers.last().expect("at least one layer").forward.hidden_size()
    }

    /// Dropout. On the CPU the mask comes from SplitMix64 seeded by one draw of burn's
    /// generator (so `Device::seed` still makes training reproducible): burn's own mask draws
    /// ChaCha per element, 7 % of a fused training step. Elsewhere, burn's dropout.
    fn drop<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        let prob = self.dropout.prob;
        let cpu = matches!(device.clone().inner().as_dispatch(), burn::backend::DispatchDevice::Flex(_));
        if !cpu || !self.dropout.training.is_enabled() || !device.is_autodiff() || prob == 0.0 {
            return self.dropout.forward(x);
        }
        let seed: Vec<f32> = Tensor::<1>::random([2], Distribution::Uniform(0.0, 1.0), &device)
            .into_data()
            .try_into_vec()
            .expect("f32 draws");
        let mut rng = SplitMix64::new(((seed[0].to_bits() as u64) << 32) | seed[1].to_bits() as u64);
        let keep = 1.0 - prob as f32;
        // The top 24 bits of each 32-bit half as a uniform draw in [0, 1).
        let threshold = (keep * (1u32 << 24) as f32) as u32;
        let shape = x.shape();
        let mut mask = Vec::with_capacity(shape.num_elements() + 1);
        while mask.len() < shape.num_elements() {
            let bits = rng.next_u64();
            for half in [bits as u32, (bits >> 32) as u32] {
                mask.push(if half >> 8 < threshold { 1.0 / keep } else { 0.0 });
            }
        }
        mask.truncate(shape.num_elements());
        x * Tensor::from_data(TensorData::new(mask, shape), &device)
    }

    /// Chooses how the recurrent layers run (the outputs agree within rounding).
    pub fn with_recurrence(mut self, recurrence: Recurrence) -> Self {
        self.recurrence = recurrence;
        self
    }

    /// Attaches the bigram table the bigram embedding was trained with.
    pub fn with_bigrams(mut self, bigrams: Option<Bigrams>) -> Self {
        self.bigrams = bigrams.map(Arc::new);
        self
    }

    /// A padded batch of encoded texts for this model (with bigram ids if it uses them).
    pub fn batch(&self, sequences: &[Vec<usize>], device: &Device) -> Batch {
        Batch::new(sequences, self.bigrams.as_deref().filter(|_| self.bigram_embedding.is_some()), device)
    }

    /// The embedded inputs `[time, batch, features]` (before dropout) and the bigram
    /// embeddings if any.
    fn embed(&self, batch: &Batch) -> (Tensor<3>, Option<Tensor<3>>) {
        // An embedding maps `[rows, columns]` ids to `[rows, columns, dim]`: here time-major.
        let tokens = self.embedding.forward(batch.tokens.clone());
        match (&self.bigram_embedding, &batch.bigrams) {
            (Some(table), Some(ids)) => {
                let bigrams = table.forward(ids.clone());
                (Tensor::cat(vec![tokens, bigrams.clone()], 2), Some(bigrams))
            }
            (Some(_), None) => panic!(
                "model with a bigram channel given a batch without bigrams; build batches with SentimentModel::batch"
            ),
            _ => (tokens, None),
        }
    }

    /// Runs every layer but the last, then the last with its directions kept apart.
    fn encode(&self, batch: &Batch) -> Encoding {
        let (inputs, bigrams) = self.embed(batch);
        let last = self.layers.len() - 1;
        let (forward, backward) = if self.fused_on(&inputs.device()) {
            // Only the real steps go through the layers: `[real tokens, features]`.
            let pack = |x: Tensor<3>| {
                let [time, size, dim] = x.dims();
                x.reshape([time * size, dim]).select(0, batch.packed.clone())
            };
            let mut sequence = self.drop(pack(inputs));
            for layer in &self.layers[..last] {
                let (forward, backward) = layer.run_fused_split(self.arch, sequence, &batch.rows);
                sequence = self.drop(pack(join_directions(forward, backward)));
            }
            self.layers[last].run_fused_split(self.arch, sequence, &batch.rows)
        } else {
            let steps = |x: Tensor<3>| -> Vec<Tensor<2>> {
                let [time, size, dim] = x.dims();
                (0..time).map(|t| x.clone().slice([t..t + 1, 0..size, 0..dim]).reshape([size, dim])).collect()
            };
            // Per-step slices: autodiff gives each a full-size gradient, quadratic in the
            // length, one reason the fused path exists.
            let masks = steps(batch.mask.clone());
            let mut sequence: Vec<Tensor<2>> = steps(inputs).into_iter().map(|x| self.dropout.forward(x)).collect();
            for layer in &self.layers[..last] {
                let (forward, backward) = layer.run_reference_split(self.arch, &sequence, &masks);
                sequence = match backward {
                    None => forward,
                    Some(backward) => {
                        forward.into_iter().zip(backward).map(|(f, b)| Tensor::cat(vec![f, b], 1)).collect()
                    }
                };
                sequence = sequence.into_iter().map(|x| self.dropout.forward(x)).collect();
            }
            let (forward, backward) = self.layers[last].run_reference_split(self.arch, &sequence, &masks);
            (Tensor::stack(forward, 0), backward.map(|b| Tensor::stack(b, 0)))
        };
        Encoding { forward, backward, bigrams }
    }

    /// Whether the fused operations ([`recurrence::projection`], [`recurrence::recurrence`],
    /// [`recurrence::mean_max_pool`]) run this model on `device`.
    fn fused_on(&self, device: &Device) -> bool {
        self.recurrence == Recurrence::Fused && recurrence::fused_on(device)
    }

    /// Class logits, `[batch, classes]`.
    pub fn forward(&self, batch: &Batch) -> Tensor<2> {
        let Encoding { forward, backward, bigrams } = self.encode(batch);
        let fused = self.fused_on(&forward.device());
        let finals = (self.pooling == Pooling::MeanMaxLast).then(|| {
            let [time, size, hidden] = forward.dims();
            // Padded steps hold the state before them, so the last step holds each sequence's
            // final state: the fused path slices it instead of a masked sum over every step.
            let last_forward = if fused {
                forward.clone().slice([time - 1..time, 0..size, 0..hidden]).reshape([size, hidden])
            } else {
                (forward.clone() * batch.last.clone()).sum_dim(0).reshape([size, hidden])
            };
            match &backward {
                None => last_forward,
                Some(b) => Tensor::cat(
                    vec![last_forward, b.clone().slice([0..1, 0..size, 0..hidden]).reshape([size, hidden])],
                    1,
                ),
            }
        });
        let mut pooled = if fused {
            pool_fused(forward, backward, &batch.rows)
        } else {
            pool(join_directions(forward, backward), batch.mask.clone(), batch.lengths.clone())
        };
        if let Some(finals) = finals {
            pooled = Tensor::cat(vec![pooled, finals], 1);
        }
        if let Some(bigrams) = bigrams {
            let [_, size, dim] = bigrams.dims();
            let sum = (bigrams * batch.mask.clone()).sum_dim(0).reshape([size, dim]);
            pooled = Tensor::cat(vec![pooled, sum / batch.lengths.clone()], 1);
        }
        self.head.forward(self.drop(pooled))
    }

    /// Language-model states: the forward direction's output at step t has only seen tokens
    /// up to t (it predicts t + 1); the backward direction's has only seen tokens from t on
    /// (it predicts t - 1). Only leak-free when no bidirectional layer lies below the last one.
    /// Both `[time, batch, hidden]`.
    pub fn language_model_states(&self, batch: &Batch) -> (Tensor<3>, Option<Tensor<3>>) {
        let Encoding { forward, backward, .. } = self.encode(batch);
        (forward, backward)
    }

    /// Whether [`language_model_states`](Self::language_model_states) can be used for
    /// pretraining: stacked bidirectional layers would let each direction see the future.
    /// Bigrams would show each step the token it must predict.
    pub fn supports_language_model(&self) -> bool {
        self.bigram_embedding.is_none() && (self.layers.len() == 1 || self.layers.iter().all(|l| l.backward.is_none()))
    }

    /// The number of classes the head predicts.
    pub fn num_classes(&self) -> usize {
        self.head.weight.dims()[1]
    }

    /// Adds `extra` classes to the head; existing classes keep their weights, new ones start
    /// from a fresh initialisation. Used when fine-tuning brings labels the model never saw.
    pub fn grow_head(mut self, extra: usize) -> Self {
        if extra == 0 {
            return self;
        }
        let [d_input, classes] = self.head.weight.dims();
        let device = self.head.weight.device();
        let fresh = LinearConfig::new(d_input, extra).init(&device);
        let weight = Tensor::cat(vec![self.head.weight.val(), fresh.weight.val()], 1);
        let bias = match (&self.head.bias, &fresh.bias) {
            (Some(old), Some(new)) => Some(Tensor::cat(vec![old.val(), new.val()], 0)),
            _ => None,
        };
        let mut head = LinearConfig::new(d_input, classes + extra).init(&device);
        head.weight = burn::module::Param::from_tensor(weight);
        head.bias = bias.map(burn::module::Param::from_tensor);
        self.head = head;
        self
    }
}

/// A layer's outputs `[time, batch, hidden]` per direction, side by side:
/// `[time, batch, directions · hidden]`.
fn join_directions(forward: Tensor<3>, backward: Option<Tensor<3>>) -> Tensor<3> {
    match backward {
        None => forward,
        Some(backward) => Tensor::cat(vec![forward, backward], 2),
    }
}

/// [`pool`] of the directions' outputs side by side, by the fused operation (a direction at a
/// time, never concatenating the padded outputs): `[batch, 2 · directions · hidden]`, every
/// direction's means, then every direction's maxima.
fn pool_fused(forward: Tensor<3>, backward: Option<Tensor<3>>, rows: &Tensor<2>) -> Tensor<2> {
    let forward = recurrence::mean_max_pool(forward, rows.clone());
    let Some(backward) = backward else { return forward };
    let backward = recurrence::mean_max_pool(backward, rows.clone());
    let half = |pooled: &Tensor<2>, second: bool| {
        let [size, both] = pooled.dims();
        let range = if second { both / 2..both } else { 0..both / 2 };
        pooled.clone().slice([0..size, range])
    };
    Tensor::cat(vec![half(&forward, false), half(&backward, false), half(&forward, true), half(&backward, true)], 1)
}

/// Mean and max over the real steps (`mask [time, batch, 1]`) of each sequence
/// `[time, batch, width]`, concatenated: `[batch, 2 * width]`.
fn pool(sequence: Tensor<3>, mask: Tensor<3>, lengths: Tensor<2>) -> Tensor<2> {
    let [_, size, width] = sequence.dims();
    let sum = (sequence.clone() * mask.clone()).sum_dim(0).reshape([size, width]);
    // Outputs lie in (-1, 1), so -10 on padded steps never wins the max.
    let max = (sequence * mask.clone() + (mask - 1.0) * 10.0).max_dim(0).reshape([size, width]);
    Tensor::cat(vec![sum / lengths, max], 1)
}

/// Texts per forward pass; bounds memory for huge inputs without changing any result.
pub const INFERENCE_BATCH: usize = 64;

/// Raw logits of `model` (in inference mode) for each encoded text, in input order.
pub fn logits_of(model: &SentimentModel, encoded: &[Vec<usize>], device: &Device) -> Vec<Vec<f32>> {
    rows_of(encoded, |ids| model.forward(&model.batch(ids, device)))
}

/// `[batch, classes]` rows of `compute` over inference batches, back in input order.
pub fn rows_of(encoded: &[Vec<usize>], compute: impl Fn(&[Vec<usize>]) -> Tensor<2>) -> Vec<Vec<f32>> {
    let mut out = vec![Vec::new(); encoded.len()];
    for chunk in inference_batches(encoded) {
        let ids: Vec<Vec<usize>> = chunk.iter().map(|&i| encoded[i].clone()).collect();
        let flat: Vec<f32> = compute(&ids).into_data().try_into_vec().expect("f32 rows");
        scatter_rows(&mut out, &chunk, &flat);
    }
    out
}

/// Batches of input indices for inference: similar lengths share a batch, so little time goes
/// into padding; at most [`INFERENCE_BATCH`] texts each.
pub fn inference_batches(encoded: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|&i| encoded[i].len());
    order.chunks(INFERENCE_BATCH).map(<[usize]>::to_vec).collect()
}

/// Puts the rows of a `[chunk.len(), classes]` probability matrix back in input order.
pub fn scatter_rows(out: &mut [Vec<f32>], chunk: &[usize], flat: &[f32]) {
    let classes = flat.len() / chunk.len().max(1);
    for (row, &i) in chunk.iter().enumerate() {
        out[i] = flat[row * classes..(row + 1) * classes].to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_dropout_drops_its_share_scales_the_rest_and_follows_the_device_seed() {
        let device = Device::flex().autodiff();
        let config = ModelConfig {
            arch: Arch::Gru,
            bidirectional: false,
            vocab_size: 4,
            embed_dim: 2,
            hidden: 2,
            layers: 1,
            dropout: 0.3,
            num_classes: 2,
            bigram_vocab_size: 0,
            bigram_dim: 0,
            pooling: Pooling::MeanMax,
        };
        let model = config.init(&device);
        let ones = || Tensor::<2>::ones([100, 100], &device);
        let values = |x: Tensor<2>| x.into_data().try_into_vec::<f32>().unwrap();
        device.seed(3);
        let first = values(model.drop(ones()));
        device.seed(3);
        assert_eq!(first, values(model.drop(ones())), "same seed, same mask");
        assert_ne!(first, values(model.drop(ones())), "a fresh mask each call");
        let dropped = first.iter().filter(|&&v| v == 0.0).count();
        assert!((2700..3300).contains(&dropped), "{dropped} of 10,000 dropped at p = 0.3");
        assert!(first.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        // Inference (no autodiff) leaves the input alone.
        let plain = config.init(&Device::flex());
        assert!(values(plain.drop(Tensor::<2>::ones([10, 10], &Device::flex()))).iter().all(|&v| v == 1.0));
    }
}
