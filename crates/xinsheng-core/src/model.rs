//! Embedding → stacked (bi)directional RNN / LSTM / GRU → mean+max pooling → linear head.
//!
//! Sequences are time-major lists of `[batch, features]` tensors. Slicing one `[batch, time, _]`
//! tensor per step would make autodiff allocate a full-size gradient for every step (quadratic in
//! the length); a list keeps each step's gradient its own size. Padded steps are masked so that
//! they leave the recurrent state unchanged: a review gives the same output alone or in a batch.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::vocab::{Bigrams, PAD_ID};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Rnn,
    #[default]
    Lstm,
    Gru,
}

impl Arch {
    /// Gate blocks per step: the input and hidden projections are `gates * hidden` wide.
    fn gates(self) -> usize {
        match self {
            Arch::Rnn => 1,
            Arch::Lstm => 4,
            Arch::Gru => 3,
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rnn" => Ok(Arch::Rnn),
            "lstm" => Ok(Arch::Lstm),
            "gru" => Ok(Arch::Gru),
            other => Err(format!("unknown architecture '{other}' (expected rnn, lstm or gru)")),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Rnn => "rnn",
            Arch::Lstm => "lstm",
            Arch::Gru => "gru",
        })
    }
}

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
}

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
            // Mean and max pooling of the recurrent outputs, and the mean bigram embedding.
            head: LinearConfig::new(2 * width + self.bigram_dim(), self.num_classes).init(device),
            arch: self.arch,
            bigrams: None,
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

    /// Runs over `inputs` (reversed when `reverse`), returning one output per step in the
    /// original order.
    fn run(&self, arch: Arch, inputs: &[Tensor<2>], masks: &[Tensor<2>], reverse: bool) -> Vec<Tensor<2>> {
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
    /// Outputs of the forward cell and, if any, of the backward cell, kept apart.
    fn run_split(
        &self,
        arch: Arch,
        inputs: &[Tensor<2>],
        masks: &[Tensor<2>],
    ) -> (Vec<Tensor<2>>, Option<Vec<Tensor<2>>>) {
        let forward = self.forward.run(arch, inputs, masks, false);
        let backward = self.backward.as_ref().map(|cell| cell.run(arch, inputs, masks, true));
        (forward, backward)
    }

    fn run(&self, arch: Arch, inputs: &[Tensor<2>], masks: &[Tensor<2>]) -> Vec<Tensor<2>> {
        match self.run_split(arch, inputs, masks) {
            (forward, None) => forward,
            (forward, Some(backward)) => {
                forward.into_iter().zip(backward).map(|(f, b)| Tensor::cat(vec![f, b], 1)).collect()
            }
        }
    }
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
    bigrams: Option<Arc<Bigrams>>,
}

/// What the encoder produces for a batch: per-step masks, the last layer's outputs per
/// direction, and the bigram embeddings (pooled separately).
struct Encoding {
    masks: Vec<Tensor<2>>,
    forward: Vec<Tensor<2>>,
    backward: Option<Vec<Tensor<2>>>,
    bigrams: Option<Vec<Tensor<2>>>,
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
            tokens: Tensor::from_data(TensorData::new(ids, [time, batch]), device),
            mask: Tensor::from_data(TensorData::new(mask, [time, batch, 1]), device),
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

    /// Attaches the bigram table the bigram embedding was trained with.
    pub fn with_bigrams(mut self, bigrams: Option<Bigrams>) -> Self {
        self.bigrams = bigrams.map(Arc::new);
        self
    }

    /// A padded batch of encoded texts for this model (with bigram ids if it uses them).
    pub fn batch(&self, sequences: &[Vec<usize>], device: &Device) -> Batch {
        Batch::new(sequences, self.bigrams.as_deref().filter(|_| self.bigram_embedding.is_some()), device)
    }

    /// Per-step masks, embedded (dropped-out) inputs, and the bigram embeddings if any.
    fn embed(&self, batch: &Batch) -> (Vec<Tensor<2>>, Vec<Tensor<2>>, Option<Vec<Tensor<2>>>) {
        let [time, size] = batch.tokens.dims();
        let masks = (0..time).map(|t| batch.mask.clone().slice([t..t + 1, 0..size, 0..1]).reshape([size, 1])).collect();
        let lookup = |table: &Embedding, ids: &Tensor<2, Int>, t: usize| {
            let [_, dim] = table.weight.dims();
            table.forward(ids.clone().slice([t..t + 1, 0..size]).reshape([size, 1])).reshape([size, dim])
        };
        let tokens: Vec<Tensor<2>> = (0..time).map(|t| lookup(&self.embedding, &batch.tokens, t)).collect();
        let bigrams: Option<Vec<Tensor<2>>> = match (&self.bigram_embedding, &batch.bigrams) {
            (Some(table), Some(ids)) => Some((0..time).map(|t| lookup(table, ids, t)).collect()),
            (Some(_), None) => panic!(
                "model with a bigram channel given a batch without bigrams; build batches with SentimentModel::batch"
            ),
            _ => None,
        };
        let inputs = match &bigrams {
            None => tokens.into_iter().map(|x| self.dropout.forward(x)).collect(),
            Some(b) => tokens
                .into_iter()
                .zip(b)
                .map(|(x, b)| self.dropout.forward(Tensor::cat(vec![x, b.clone()], 1)))
                .collect(),
        };
        (masks, inputs, bigrams)
    }

    /// Runs every layer but the last, then the last with its directions kept apart.
    fn encode(&self, batch: &Batch) -> Encoding {
        let (masks, mut sequence, bigrams) = self.embed(batch);
        let last = self.layers.len() - 1;
        for layer in &self.layers[..last] {
            sequence = layer.run(self.arch, &sequence, &masks);
            sequence = sequence.into_iter().map(|x| self.dropout.forward(x)).collect();
        }
        let (forward, backward) = self.layers[last].run_split(self.arch, &sequence, &masks);
        Encoding { masks, forward, backward, bigrams }
    }

    /// Class logits, `[batch, classes]`.
    pub fn forward(&self, batch: &Batch) -> Tensor<2> {
        let Encoding { masks, forward, backward, bigrams } = self.encode(batch);
        let sequence = match backward {
            None => forward,
            Some(backward) => forward.into_iter().zip(backward).map(|(f, b)| Tensor::cat(vec![f, b], 1)).collect(),
        };
        let mut pooled = pool(&sequence, &masks, batch.lengths.clone());
        if let Some(bigrams) = bigrams {
            let sum = bigrams
                .into_iter()
                .zip(&masks)
                .map(|(b, m)| b * m.clone())
                .reduce(|a, b| a + b)
                .expect("at least one step");
            pooled = Tensor::cat(vec![pooled, sum / batch.lengths.clone()], 1);
        }
        self.head.forward(self.dropout.forward(pooled))
    }

    /// Language-model states: the forward direction's output at step t has only seen tokens
    /// up to t (it predicts t + 1); the backward direction's has only seen tokens from t on
    /// (it predicts t - 1). Only leak-free when no bidirectional layer lies below the last one.
    pub fn language_model_states(&self, batch: &Batch) -> (Vec<Tensor<2>>, Option<Vec<Tensor<2>>>) {
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

/// Mean and max over the real steps of each sequence, concatenated: `[batch, 2 * width]`.
fn pool(sequence: &[Tensor<2>], masks: &[Tensor<2>], lengths: Tensor<2>) -> Tensor<2> {
    let mut sum = sequence[0].clone() * masks[0].clone();
    // Outputs lie in (-1, 1), so -10 on padded steps never wins the max.
    let masked = |x: Tensor<2>, m: Tensor<2>| x * m.clone() + (m - 1.0) * 10.0;
    let mut max = masked(sequence[0].clone(), masks[0].clone());
    for (x, m) in sequence.iter().zip(masks).skip(1) {
        sum = sum + x.clone() * m.clone();
        max = max.max_pair(masked(x.clone(), m.clone()));
    }
    Tensor::cat(vec![sum / lengths, max], 1)
}
