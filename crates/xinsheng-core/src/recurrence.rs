//! The fused recurrence: one operation runs a whole layer-direction of an RNN, LSTM or GRU.
//!
//! The model projects the inputs of every real step and gate in one matmul before calling
//! [`recurrence`]; the operation then runs the steps itself: one hidden matmul per step for all
//! gates, the gate arithmetic fused, padded steps leaving the state unchanged. Inputs
//! are *packed*: only real steps are projected and computed (as cuDNN's packed sequences), so a
//! batch padded to its longest review costs what its real tokens cost. The backward pass is
//! written out by hand (backpropagation through time), so autodiff records one node per
//! layer-direction instead of ~30 per step.
//!
//! Two companion operations keep the rest of the layer off burn's general kernels where those
//! are slow: [`projection`] (the input projection, burn's `linear` on the CPU, a tiled kernel on
//! WebGPU) and [`mean_max_pool`] (the pooling over the padded outputs, one pass instead of half a
//! dozen whole-tensor operations).
//!
//! Backends: Flex (the CPU, native and WebAssembly) runs it in plain Rust below; with the `wgpu`
//! feature, burn's CubeCL backend (WebGPU) runs it as one kernel launch per layer-direction
//! (`cube.rs`); any other backend keeps the step-by-step reference in [`crate::model`] (see
//! [`fused_on`]).
//!
//! Layouts (row-major): `rows [time, batch]`, the packed row of each real step and -1 for padding
//! (see [`pack`]); `x_proj [real, gates·hidden]`, one row per real step, time-major;
//! `w_hidden [hidden, gates·hidden]`, `b_hidden [gates·hidden]`; output `[time, batch, hidden]`,
//! a padded step holding the state before it. Gate order is the model's: GRU reset, update,
//! candidate (reset applied after the hidden projection); LSTM input, forget, cell, output.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::{Device, Tensor, TensorData};
use std::borrow::Cow;

use crate::arch::Arch;

/// Runs one direction of one recurrent layer; see the module documentation for the layouts.
pub fn recurrence(
    arch: Arch,
    reverse: bool,
    x_proj: Tensor<2>,
    w_hidden: Tensor<2>,
    b_hidden: Tensor<1>,
    rows: Tensor<2>,
) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::recurrence(
        x_proj.into_dispatch(),
        w_hidden.into_dispatch(),
        b_hidden.into_dispatch(),
        rows.into_dispatch(),
        arch,
        reverse,
    ))
}

/// The input projection of every real step: `x [rows, in] · w [in, out] + b [out]` →
/// `[rows, out]`, as burn's `Linear` computes it. On the CPU it is burn's own `linear`; on WebGPU
/// a kernel tiled like the recurrence's (see `cube.rs`), with its backward pass.
pub fn projection(x: Tensor<2>, w: Tensor<2>, b: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::projection(x.into_dispatch(), w.into_dispatch(), b.into_dispatch()))
}

/// Mean and max over the real steps of each sequence, in one pass: `sequence [time, batch,
/// width]` (a recurrent layer-direction's outputs, each in (-1, 1)) and `rows [time, batch]`
/// (as for [`recurrence`]: -1 marks padding) → `[batch, 2 · width]`, the means then the maxima.
/// A sequence with no real step gets mean 0 and max -10. Equal to the same sums and maxima
/// written with tensor operations on the padded batch, which on WebGPU cost one workgroup per
/// 64 elements of the whole `[time, batch, width]` tensor for each of half a dozen operations;
/// here one unit per `(sequence, feature)` walks the steps.
pub fn mean_max_pool(sequence: Tensor<3>, rows: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::mean_max_pool(sequence.into_dispatch(), rows.into_dispatch()))
}

/// Packs the real steps of a `[time, batch]` mask (1 real, 0 padding), time-major: the position
/// `t · batch + s` of each packed row, and [`recurrence`]'s `rows` (each step's packed row, -1
/// for padding).
pub fn pack(mask: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let mut positions = Vec::new();
    let rows = mask
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            if m == 0.0 {
                return -1.0;
            }
            positions.push(i);
            (positions.len() - 1) as f32
        })
        .collect();
    (positions, rows)
}

/// Whether [`recurrence`] runs on `device` (with or without autodiff).
pub fn fused_on(device: &Device) -> bool {
    match device.clone().inner().as_dispatch() {
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "wgpu")]
        DispatchDevice::Cube(_) => true,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

#[cfg(feature = "wgpu")]
mod cube;

#[backend_extension(Flex, Cube: cfg(feature = "wgpu"), Autodiff)]
pub trait RecurrenceBackend: Backend {
    /// The layer's outputs, `[time, batch, hidden]`.
    fn recurrence(
        x_proj: FloatTensor<Self>,
        w_hidden: FloatTensor<Self>,
        b_hidden: FloatTensor<Self>,
        rows: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> FloatTensor<Self>;

    /// The outputs and what the backward pass needs: per real step the gate activations (and
    /// for the LSTM the cell states), `[real, cache_width]`.
    fn recurrence_with_cache(
        x_proj: FloatTensor<Self>,
        w_hidden: FloatTensor<Self>,
        b_hidden: FloatTensor<Self>,
        rows: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Gradients of `x_proj`, `w_hidden` and `b_hidden` given the outputs' gradient.
    #[allow(clippy::too_many_arguments)]
    fn recurrence_backward(
        w_hidden: FloatTensor<Self>,
        rows: FloatTensor<Self>,
        outputs: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// [`projection`]: `[rows, out]`.
    fn projection(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Gradients of [`projection`]'s `x`, `w` and `b` given its output's gradient.
    fn projection_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// [`mean_max_pool`]: `[batch, 2 · width]`.
    fn mean_max_pool(sequence: FloatTensor<Self>, rows: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The pooled values and, per `(sequence, feature)`, the step of the maximum (as a float;
    /// -1 when the sequence has no real step), `[batch, width]`.
    fn mean_max_pool_with_argmax(
        sequence: FloatTensor<Self>,
        rows: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradient of the sequence, `[time, batch, width]`, given the pooled values' gradient
    /// `[batch, 2 · width]`: each mean's share to every real step, each maximum's to its step.
    fn mean_max_pool_backward(
        rows: FloatTensor<Self>,
        argmax: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

// ---------------------------------------------------------------------------------------------
// Flex: plain Rust over host memory.

type FlexTensor = FloatTensor<Flex>;

/// The tensor's values as f32, borrowed when they already are contiguous f32 (the usual case).
fn values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(tensor.clone().into_data().convert::<f32>().try_into_vec().expect("converted to f32")),
    }
}

fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

impl RecurrenceBackend for Flex {
    fn recurrence(
        x_proj: FlexTensor,
        w_hidden: FlexTensor,
        b_hidden: FlexTensor,
        rows: FlexTensor,
        arch: Arch,
        reverse: bool,
    ) -> FlexTensor {
        let (steps, dims) = Steps::of(arch, &rows, &w_hidden);
        let (x, w, b) = (values(&x_proj), values(&w_hidden), values(&b_hidden));
        let (outputs, _) = sharded::forward(&dims, &steps, reverse, &x, &w, &b, false);
        flex(outputs, &[dims.time, dims.batch, dims.hidden])
    }

    fn recurrence_with_cache(
        x_proj: FlexTensor,
        w_hidden: FlexTensor,
        b_hidden: FlexTensor,
        rows: FlexTensor,
        arch: Arch,
        reverse: bool,
    ) -> (FlexTensor, FlexTensor) {
        let (steps, dims) = Steps::of(arch, &rows, &w_hidden);
        let (x, w, b) = (values(&x_proj), values(&w_hidden), values(&b_hidden));
        let (outputs, cache) = sharded::forward(&dims, &steps, reverse, &x, &w, &b, true);
        (flex(outputs, &[dims.time, dims.batch, dims.hidden]), flex(cache, &[steps.real(), dims.cache()]))
    }

    fn recurrence_backward(
        w_hidden: FlexTensor,
        rows: FlexTensor,
        outputs: FlexTensor,
        cache: FlexTensor,
        grad: FlexTensor,
        arch: Arch,
        reverse: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (steps, dims) = Steps::of(arch, &rows, &w_hidden);
        let (w, outputs, cache, grad) = (values(&w_hidden), values(&outputs), values(&cache), values(&grad));
        let grads = sharded::backward(&dims, &steps, reverse, &w, &outputs, &cache, &grad);
        let width = dims.width();
        (
            flex(grads.x_proj, &[steps.real(), width]),
            flex(grads.w_hidden, &[dims.hidden, width]),
            flex(grads.b_hidden, &[width]),
        )
    }

    fn projection(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        <Flex as ModuleOps<Flex>>::linear(x, w, Some(b))
    }

    fn projection_backward(x: FlexTensor, w: FlexTensor, grad: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
        (
            <Flex as ModuleOps<Flex>>::linear_x_backward(w, grad.clone()),
            <Flex as ModuleOps<Flex>>::linear_weight_backward(x, grad.clone()),
            <Flex as ModuleOps<Flex>>::linear_bias_backward(grad),
        )
    }

    fn mean_max_pool(sequence: FlexTensor, rows: FlexTensor) -> FlexTensor {
        let [time, batch, width] = sequence.layout().shape().dims::<3>();
        let (pooled, _) = pool::forward(&values(&sequence), &values(&rows), [time, batch, width], false);
        flex(pooled, &[batch, 2 * width])
    }

    fn mean_max_pool_with_argmax(sequence: FlexTensor, rows: FlexTensor) -> (FlexTensor, FlexTensor) {
        let [time, batch, width] = sequence.layout().shape().dims::<3>();
        let (pooled, argmax) = pool::forward(&values(&sequence), &values(&rows), [time, batch, width], true);
        (flex(pooled, &[batch, 2 * width]), flex(argmax, &[batch, width]))
    }

    fn mean_max_pool_backward(rows: FlexTensor, argmax: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let [time, batch] = rows.layout().shape().dims::<2>();
        let width = argmax.layout().shape()[1];
        let d = pool::backward(&values(&rows), &values(&argmax), &values(&grad), [time, batch, width]);
        flex(d, &[time, batch, width])
    }
}

/// [`mean_max_pool`] over host memory.
mod pool {
    /// `(pooled [batch, 2·width], argmax [batch, width])`; the argmax only `with_argmax`
    /// (training), which keeps the loop scalar. The maxima start from the first real step, so
    /// they do not depend on the -10 that stands for no step at all.
    pub(super) fn forward(
        sequence: &[f32],
        rows: &[f32],
        [time, batch, width]: [usize; 3],
        with_argmax: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut pooled = vec![0f32; batch * 2 * width];
        let mut argmax = if with_argmax { vec![-1f32; batch * width] } else { Vec::new() };
        for s in 0..batch {
            let (sum, max) = pooled[s * 2 * width..(s + 1) * 2 * width].split_at_mut(width);
            max.fill(-10.0);
            let mut length = 0usize;
            for t in (0..time).filter(|&t| rows[t * batch + s] >= 0.0) {
                let x = &sequence[(t * batch + s) * width..(t * batch + s + 1) * width];
                if length == 0 {
                    max.copy_from_slice(x);
                }
                length += 1;
                if with_argmax {
                    let arg = &mut argmax[s * width..(s + 1) * width];
                    for w in 0..width {
                        sum[w] += x[w];
                        if x[w] > max[w] || arg[w] < 0.0 {
                            max[w] = x[w];
                            arg[w] = t as f32;
                        }
                    }
                } else {
                    for ((sum, max), &x) in sum.iter_mut().zip(max.iter_mut()).zip(x) {
                        *sum += x;
                        *max = if x > *max { x } else { *max };
                    }
                }
            }
            let length = length.max(1) as f32;
            sum.iter_mut().for_each(|v| *v /= length);
        }
        (pooled, argmax)
    }

    /// The sequence's gradient `[time, batch, width]`.
    pub(super) fn backward(rows: &[f32], argmax: &[f32], grad: &[f32], [time, batch, width]: [usize; 3]) -> Vec<f32> {
        let mut d = vec![0f32; time * batch * width];
        for s in 0..batch {
            let length = (0..time).filter(|&t| rows[t * batch + s] >= 0.0).count().max(1) as f32;
            let (d_mean, d_max) = grad[s * 2 * width..(s + 1) * 2 * width].split_at(width);
            for t in (0..time).filter(|&t| rows[t * batch + s] >= 0.0) {
                let out = &mut d[(t * batch + s) * width..(t * batch + s + 1) * width];
                for w in 0..width {
                    out[w] = d_mean[w] / length;
                    if argmax[s * width + w] == t as f32 {
                        out[w] += d_max[w];
                    }
                }
            }
        }
        d
    }
}

/// Which sequences are real at each step, and where their packed rows start.
struct Steps {
    /// Per step, the sequences that are real there (not padding).
    active: Vec<Vec<usize>>,
    /// Per step, the packed row of its first active sequence.
    first_row: Vec<usize>,
}

impl Steps {
    fn of(arch: Arch, rows: &FlexTensor, w_hidden: &FlexTensor) -> (Steps, Dims) {
        let [time, batch] = rows.layout().shape().dims::<2>();
        let rows = values(rows);
        let active: Vec<Vec<usize>> =
            rows.chunks(batch.max(1)).take(time).map(|step| (0..batch).filter(|&s| step[s] >= 0.0).collect()).collect();
        let first_row = active
            .iter()
            .scan(0, |row, step| {
                let first = *row;
                *row += step.len();
                Some(first)
            })
            .collect();
        let hidden = w_hidden.layout().shape()[0];
        (Steps { active, first_row }, Dims::new(arch, time, batch, hidden))
    }

    /// Rows of the packed inputs.
    fn real(&self) -> usize {
        self.active.iter().map(Vec::len).sum()
    }

    /// The steps of the sequences `range` alone, and the packed row (in `self`) of each of
    /// their packed rows.
    fn subset(&self, range: std::ops::Range<usize>) -> (Steps, Vec<usize>) {
        let mut rows = Vec::new();
        let mut active = Vec::with_capacity(self.active.len());
        let mut first_row = Vec::with_capacity(self.active.len());
        for (t, step) in self.active.iter().enumerate() {
            first_row.push(rows.len());
            let mut local = Vec::new();
            for (k, &s) in step.iter().enumerate() {
                if range.contains(&s) {
                    local.push(s - range.start);
                    rows.push(self.first_row[t] + k);
                }
            }
            active.push(local);
        }
        (Steps { active, first_row }, rows)
    }
}

/// Sequences are independent, so the recurrence of a large batch runs as one shard of
/// sequences per thread (natively; the browser's WebAssembly has one thread).
mod sharded {
    use super::{Dims, Steps, cpu};

    /// Sequences per shard below which splitting costs more than it saves.
    const MIN_SHARD: usize = 8;

    fn shards(batch: usize) -> Vec<std::ops::Range<usize>> {
        #[cfg(not(target_arch = "wasm32"))]
        let threads = rayon::current_num_threads();
        #[cfg(target_arch = "wasm32")]
        let threads = 1;
        let count = threads.min(batch / MIN_SHARD).max(1);
        (0..count).map(|i| i * batch / count..(i + 1) * batch / count).collect()
    }

    fn run<T: Send>(jobs: Vec<std::ops::Range<usize>>, job: impl Fn(std::ops::Range<usize>) -> T + Sync) -> Vec<T> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            jobs.into_par_iter().map(&job).collect()
        }
        #[cfg(target_arch = "wasm32")]
        jobs.into_iter().map(job).collect()
    }

    /// Copies `rows` (of `width` values each) of `from`, in that order.
    fn gather(from: &[f32], rows: &[usize], width: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            out.extend_from_slice(&from[r * width..(r + 1) * width]);
        }
        out
    }

    /// The inverse of [`gather`]: `from`'s rows into `rows` of `into`.
    fn scatter(into: &mut [f32], from: &[f32], rows: &[usize], width: usize) {
        for (i, &r) in rows.iter().enumerate() {
            into[r * width..(r + 1) * width].copy_from_slice(&from[i * width..(i + 1) * width]);
        }
    }

    /// `[time, batch, width]` → the sequences `range` of every step.
    fn sequences(from: &[f32], d: &Dims, range: &std::ops::Range<usize>, width: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(d.time * range.len() * width);
        for t in 0..d.time {
            out.extend_from_slice(&from[(t * d.batch + range.start) * width..(t * d.batch + range.end) * width]);
        }
        out
    }

    fn put_sequences(into: &mut [f32], from: &[f32], d: &Dims, range: &std::ops::Range<usize>, width: usize) {
        let chunk = range.len() * width;
        for t in 0..d.time {
            into[(t * d.batch + range.start) * width..(t * d.batch + range.end) * width]
                .copy_from_slice(&from[t * chunk..(t + 1) * chunk]);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        d: &Dims,
        steps: &Steps,
        reverse: bool,
        x_proj: &[f32],
        w: &[f32],
        b: &[f32],
        with_cache: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let ranges = shards(d.batch);
        let cache_len = |real: usize| if with_cache { real * d.cache() } else { 0 };
        if ranges.len() == 1 {
            let mut cache = vec![0f32; cache_len(steps.real())];
            let outputs = cpu::forward(d, steps, reverse, x_proj, None, w, b, with_cache.then_some(&mut cache[..]));
            return (outputs, cache);
        }
        let parts = run(ranges.clone(), |range| {
            let (sub, rows) = steps.subset(range.clone());
            let local = Dims { batch: range.len(), ..*d };
            let mut cache = vec![0f32; cache_len(rows.len())];
            // The shard reads its rows of the inputs in place.
            let outputs =
                cpu::forward(&local, &sub, reverse, x_proj, Some(&rows), w, b, with_cache.then_some(&mut cache[..]));
            (outputs, cache, rows)
        });
        let mut outputs = vec![0f32; d.time * d.batch * d.hidden];
        let mut cache = vec![0f32; cache_len(steps.real())];
        for (range, (part, part_cache, rows)) in ranges.iter().zip(parts) {
            put_sequences(&mut outputs, &part, d, range, d.hidden);
            if with_cache {
                scatter(&mut cache, &part_cache, &rows, d.cache());
            }
        }
        (outputs, cache)
    }

    pub(super) fn backward(
        d: &Dims,
        steps: &Steps,
        reverse: bool,
        w: &[f32],
        outputs: &[f32],
        cache: &[f32],
        grad: &[f32],
    ) -> cpu::Gradients {
        let ranges = shards(d.batch);
        if ranges.len() == 1 {
            return cpu::backward(d, steps, reverse, w, outputs, cache, grad);
        }
        let parts = run(ranges.clone(), |range| {
            let (sub, rows) = steps.subset(range.clone());
            let local = Dims { batch: range.len(), ..*d };
            let grads = cpu::backward(
                &local,
                &sub,
                reverse,
                w,
                &sequences(outputs, d, &range, d.hidden),
                &gather(cache, &rows, d.cache()),
                &sequences(grad, d, &range, d.hidden),
            );
            (grads, rows)
        });
        let width = d.width();
        let mut total = cpu::Gradients {
            x_proj: vec![0f32; steps.real() * width],
            w_hidden: vec![0f32; d.hidden * width],
            b_hidden: vec![0f32; width],
        };
        for (part, rows) in parts {
            scatter(&mut total.x_proj, &part.x_proj, &rows, width);
            for (sum, value) in
                total.w_hidden.iter_mut().zip(&part.w_hidden).chain(total.b_hidden.iter_mut().zip(&part.b_hidden))
            {
                *sum += value;
            }
        }
        total
    }
}

/// Values cached per real step for the backward pass, on every backend.
fn cache_width(arch: Arch, hidden: usize) -> usize {
    hidden
        * match arch {
            Arch::Rnn => 1,  // the new state
            Arch::Gru => 4,  // reset, update, candidate, hidden projection of the candidate
            Arch::Lstm => 6, // input, forget, cell, output gates, new cell, previous cell
        }
}

/// Sizes of one recurrence.
#[derive(Clone, Copy, Debug)]
struct Dims {
    arch: Arch,
    time: usize,
    batch: usize,
    hidden: usize,
}

impl Dims {
    fn new(arch: Arch, time: usize, batch: usize, hidden: usize) -> Self {
        Dims { arch, time, batch, hidden }
    }

    /// Width of the gate projections.
    fn width(&self) -> usize {
        self.arch.gates() * self.hidden
    }

    /// Values cached per real step for the backward pass.
    fn cache(&self) -> usize {
        cache_width(self.arch, self.hidden)
    }

    /// Steps in the order the recurrence visits them.
    fn order(&self, reverse: bool) -> Box<dyn Iterator<Item = usize>> {
        if reverse { Box::new((0..self.time).rev()) } else { Box::new(0..self.time) }
    }

    /// The step visited just before `t`, whose state `t` starts from.
    fn previous(&self, t: usize, reverse: bool) -> Option<usize> {
        if reverse { (t + 1 < self.time).then_some(t + 1) } else { t.checked_sub(1) }
    }
}

mod cpu {
    use super::{Dims, Steps};
    use crate::arch::Arch;

    /// `exp(x)` to about 2 ulp, branch-free so that loops over slices vectorise (libm's `expf`
    /// is a call per element). Cephes' polynomial after the usual range reduction.
    #[inline(always)]
    fn exp(x: f32) -> f32 {
        let x = x.clamp(-87.0, 88.0);
        // Round x / ln 2 to the nearest integer with the 1.5 · 2²³ trick (no SSE4.1 `round`).
        const MAGIC: f32 = 12_582_912.0;
        let shifted = x * std::f32::consts::LOG2_E + MAGIC;
        let n = shifted - MAGIC;
        let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
        let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 1.666_666_5e-1)
            * r
            + 0.5;
        let e = p * r * r + r + 1.0;
        // 2ⁿ from n's bits in the shifted sum's mantissa.
        let n_bits = (shifted.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
        e * f32::from_bits(((n_bits + 127) << 23) as u32)
    }

    #[inline(always)]
    fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + exp(-x))
    }

    #[inline(always)]
    fn tanh(x: f32) -> f32 {
        2.0 / (1.0 + exp(-2.0 * x)) - 1.0
    }

    /// `out[m×n] = (accumulate ? out : 0) + a[m×k] · b[k×n]`, each operand row-major or, when
    /// its flag is set, stored transposed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn matmul(
        out: &mut [f32],
        a: &[f32],
        a_transposed: bool,
        b: &[f32],
        b_transposed: bool,
        [m, n, k]: [usize; 3],
        accumulate: bool,
    ) {
        assert!(out.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
        if m == 0 || n == 0 {
            return;
        }
        // (column stride, row stride) of each operand.
        let (a_cs, a_rs) = if a_transposed { (m as isize, 1) } else { (1, k as isize) };
        let (b_cs, b_rs) = if b_transposed { (k as isize, 1) } else { (1, n as isize) };
        // SAFETY: the assert above keeps every index the strides reach inside the slices.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                accumulate,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }

    /// Runs the recurrence; fills `cache` (`[real, d.cache()]`) when given one. The inputs of
    /// packed row `r` (in `steps`) are row `x_rows[r]` of `x_proj` (row `r` without a map).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        d: &Dims,
        steps: &Steps,
        reverse: bool,
        x_proj: &[f32],
        x_rows: Option<&[usize]>,
        w: &[f32],
        b: &[f32],
        cache: Option<&mut [f32]>,
    ) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2.
            return unsafe { forward_avx2(d, steps, reverse, x_proj, x_rows, w, b, cache) };
        }
        forward_portable(d, steps, reverse, x_proj, x_rows, w, b, cache)
    }

    /// [`forward`] compiled for AVX2: the gate arithmetic in 8 lanes instead of the baseline
    /// x86-64's 4 (SSE2); the same operations in the same order, so the same results.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    fn forward_avx2(
        d: &Dims,
        steps: &Steps,
        reverse: bool,
        x_proj: &[f32],
        x_rows: Option<&[usize]>,
        w: &[f32],
        b: &[f32],
        cache: Option<&mut [f32]>,
    ) -> Vec<f32> {
        forward_portable(d, steps, reverse, x_proj, x_rows, w, b, cache)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn forward_portable(
        d: &Dims,
        steps: &Steps,
        reverse: bool,
        x_proj: &[f32],
        x_rows: Option<&[usize]>,
        w: &[f32],
        b: &[f32],
        mut cache: Option<&mut [f32]>,
    ) -> Vec<f32> {
        let (batch, hidden, width, cache_width) = (d.batch, d.hidden, d.width(), d.cache());
        let mut outputs = vec![0f32; d.time * batch * hidden];
        let mut h = vec![0f32; batch * hidden];
        let mut c = vec![0f32; batch * hidden];
        // The active sequences' states and hidden projections at one step.
        let mut h_active = vec![0f32; batch * hidden];
        let mut hp = vec![0f32; batch * width];
        // Gate activations of one sequence at one step.
        let mut gates = vec![0f32; width];
        let mut c_new = vec![0f32; hidden];
        for t in d.order(reverse) {
            let active = &steps.active[t];
            let n = active.len();
            for (k, &s) in active.iter().enumerate() {
                h_active[k * hidden..(k + 1) * hidden].copy_from_slice(&h[s * hidden..(s + 1) * hidden]);
                hp[k * width..(k + 1) * width].copy_from_slice(b);
            }
            matmul(&mut hp, &h_active, false, w, false, [n, width, hidden], true);
            for (k, &s) in active.iter().enumerate() {
                let row = steps.first_row[t] + k;
                let x_row = x_rows.map_or(row, |rows| rows[row]);
                let x = &x_proj[x_row * width..(x_row + 1) * width];
                let hp = &hp[k * width..(k + 1) * width];
                let h = &mut h[s * hidden..(s + 1) * hidden];
                let c = &mut c[s * hidden..(s + 1) * hidden];
                if let (Arch::Lstm, Some(cache)) = (d.arch, cache.as_deref_mut()) {
                    cache[row * cache_width + 5 * hidden..(row + 1) * cache_width].copy_from_slice(c);
                }
                match d.arch {
                    Arch::Rnn => {
                        for ((g, &x), &hp) in gates.iter_mut().zip(x).zip(hp) {
                            *g = tanh(x + hp);
                        }
                        h.copy_from_slice(&gates);
                    }
                    Arch::Gru => {
                        let (rz, n) = gates.split_at_mut(2 * hidden);
                        for ((g, &x), &hp) in rz.iter_mut().zip(&x[..2 * hidden]).zip(&hp[..2 * hidden]) {
                            *g = sigmoid(x + hp);
                        }
                        let (r, z) = rz.split_at(hidden);
                        for (((n, &x), &hn), &r) in n.iter_mut().zip(&x[2 * hidden..]).zip(&hp[2 * hidden..]).zip(r) {
                            *n = tanh(x + r * hn);
                        }
                        for ((h, &z), &n) in h.iter_mut().zip(z).zip(n.iter()) {
                            *h = n + z * (*h - n);
                        }
                    }
                    Arch::Lstm => {
                        for ((g, &x), &hp) in gates.iter_mut().zip(x).zip(hp) {
                            *g = sigmoid(x + hp);
                        }
                        for ((g, &x), &hp) in gates[2 * hidden..3 * hidden]
                            .iter_mut()
                            .zip(&x[2 * hidden..3 * hidden])
                            .zip(&hp[2 * hidden..3 * hidden])
                        {
                            *g = tanh(x + hp);
                        }
                        let (i, rest) = gates.split_at(hidden);
                        let (f, rest) = rest.split_at(hidden);
                        let (g, o) = rest.split_at(hidden);
                        for j in 0..hidden {
                            c_new[j] = f[j] * c[j] + i[j] * g[j];
                            c[j] = c_new[j];
                            h[j] = o[j] * tanh(c_new[j]);
                        }
                    }
                }
                if let Some(cache) = cache.as_deref_mut() {
                    let cached = &mut cache[row * cache_width..(row + 1) * cache_width];
                    cached[..width].copy_from_slice(&gates);
                    match d.arch {
                        Arch::Rnn => {}
                        Arch::Gru => cached[width..].copy_from_slice(&hp[2 * hidden..]),
                        Arch::Lstm => cached[width..width + hidden].copy_from_slice(&c_new),
                    }
                }
            }
            // Every sequence's state, padded steps included (they hold the state before them).
            outputs[t * batch * hidden..(t + 1) * batch * hidden].copy_from_slice(&h);
        }
        outputs
    }

    pub(super) struct Gradients {
        pub x_proj: Vec<f32>,
        pub w_hidden: Vec<f32>,
        pub b_hidden: Vec<f32>,
    }

    /// Backpropagation through time. `grad` is the gradient of every step's output; the state
    /// carried between steps collects the rest.
    pub(super) fn backward(
        d: &Dims,
        steps: &Steps,
        reverse: bool,
        w: &[f32],
        outputs: &[f32],
        cache: &[f32],
        grad: &[f32],
    ) -> Gradients {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2.
            return unsafe { backward_avx2(d, steps, reverse, w, outputs, cache, grad) };
        }
        backward_portable(d, steps, reverse, w, outputs, cache, grad)
    }

    /// [`backward`] compiled for AVX2, as [`forward_avx2`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn backward_avx2(
        d: &Dims,
        steps: &Steps,
        reverse: bool,
        w: &[f32],
        outputs: &[f32],
        cache: &[f32],
        grad: &[f32],
    ) -> Gradients {
        backward_portable(d, steps, reverse, w, outputs, cache, grad)
    }

    #[inline(always)]
    fn backward_portable(
        d: &Dims,
        steps: &Steps,
        reverse: bool,
        w: &[f32],
        outputs: &[f32],
        cache: &[f32],
        grad: &[f32],
    ) -> Gradients {
        let (batch, hidden, width, cache_width) = (d.batch, d.hidden, d.width(), d.cache());
        let real = steps.real();
        let mut d_x = vec![0f32; real * width];
        // Gradient of the hidden projection (differs from d_x in the GRU's candidate block).
        let mut d_hp = vec![0f32; real * width];
        // The state each real step started from, for the weight gradient.
        let mut h_prev_all = vec![0f32; real * hidden];
        // Gradients of each sequence's state, carried backwards through time.
        let mut d_h = vec![0f32; batch * hidden];
        let mut d_c = vec![0f32; batch * hidden];
        let mut d_h_active = vec![0f32; batch * hidden];
        let zeros = vec![0f32; hidden];
        // Wᵀ `[width, hidden]`, laid out once: gemm packs a contiguous operand faster than a
        // transposed view, and it packs it at every step.
        let mut w_t = vec![0f32; width * hidden];
        for (k, row) in w.chunks(width).enumerate() {
            for (g, &value) in row.iter().enumerate() {
                w_t[g * hidden + k] = value;
            }
        }
        let order: Vec<usize> = d.order(reverse).collect();
        for &t in order.iter().rev() {
            for (state, &g) in d_h.iter_mut().zip(&grad[t * batch * hidden..(t + 1) * batch * hidden]) {
                *state += g;
            }
            let prev = d.previous(t, reverse);
            let active = &steps.active[t];
            let first = steps.first_row[t];
            for (k, &s) in active.iter().enumerate() {
                let row = first + k;
                let h_prev = match prev {
                    Some(p) => &outputs[(p * batch + s) * hidden..(p * batch + s + 1) * hidden],
                    None => &zeros[..],
                };
                h_prev_all[row * hidden..(row + 1) * hidden].copy_from_slice(h_prev);
                let cached = &cache[row * cache_width..(row + 1) * cache_width];
                let dx = &mut d_x[row * width..(row + 1) * width];
                let dhp = &mut d_hp[row * width..(row + 1) * width];
                let dh_state = &mut d_h[s * hidden..(s + 1) * hidden];
                let dc_state = &mut d_c[s * hidden..(s + 1) * hidden];
                for j in 0..hidden {
                    // The output's gradient and the next step's, through the new state.
                    let dh_new = dh_state[j];
                    let mut dh_prev = 0.0;
                    match d.arch {
                        Arch::Rnn => {
                            let h_new = cached[j];
                            let da = dh_new * (1.0 - h_new * h_new);
                            dx[j] = da;
                            dhp[j] = da;
                        }
                        Arch::Gru => {
                            let (r, z, n, hn) =
                                (cached[j], cached[hidden + j], cached[2 * hidden + j], cached[3 * hidden + j]);
                            // h_new = n + z (h_prev − n)
                            let dn = dh_new * (1.0 - z);
                            let dz = dh_new * (h_prev[j] - n);
                            dh_prev += dh_new * z;
                            let dan = dn * (1.0 - n * n);
                            let dar = dan * hn * r * (1.0 - r);
                            let daz = dz * z * (1.0 - z);
                            dx[j] = dar;
                            dx[hidden + j] = daz;
                            dx[2 * hidden + j] = dan;
                            dhp[j] = dar;
                            dhp[hidden + j] = daz;
                            dhp[2 * hidden + j] = dan * r;
                        }
                        Arch::Lstm => {
                            let [i, f, g, o, c_new, c_prev] = std::array::from_fn(|slot| cached[slot * hidden + j]);
                            // c_new = f c_prev + i g; h_new = o tanh(c_new)
                            let tc = tanh(c_new);
                            let dc_new = dc_state[j] + dh_new * o * (1.0 - tc * tc);
                            dc_state[j] = dc_new * f;
                            let gates = [
                                dc_new * g * i * (1.0 - i),
                                dc_new * c_prev * f * (1.0 - f),
                                dc_new * i * (1.0 - g * g),
                                dh_new * tc * o * (1.0 - o),
                            ];
                            for (slot, value) in gates.into_iter().enumerate() {
                                dx[slot * hidden + j] = value;
                                dhp[slot * hidden + j] = value;
                            }
                        }
                    }
                    dh_state[j] = dh_prev;
                }
            }
            // The hidden projection's share of the previous states' gradients: d_hp · Wᵀ.
            let n = active.len();
            matmul(
                &mut d_h_active,
                &d_hp[first * width..(first + n) * width],
                false,
                &w_t,
                false,
                [n, hidden, width],
                false,
            );
            for (k, &s) in active.iter().enumerate() {
                for (state, &g) in d_h[s * hidden..(s + 1) * hidden].iter_mut().zip(&d_h_active[k * hidden..]) {
                    *state += g;
                }
            }
        }
        let mut w_hidden = vec![0f32; hidden * width];
        matmul(&mut w_hidden, &h_prev_all, true, &d_hp, false, [hidden, width, real], false);
        let mut b_hidden = vec![0f32; width];
        for row in d_hp.chunks(width) {
            for (sum, value) in b_hidden.iter_mut().zip(row) {
                *sum += value;
            }
        }
        Gradients { x_proj: d_x, w_hidden, b_hidden }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn fast_exp_sigmoid_and_tanh_are_accurate() {
            for i in -2000..=2000 {
                let x = i as f32 * 0.01;
                assert!((super::exp(x) - x.exp()).abs() <= 2e-7 * x.exp().max(1.0), "exp({x})");
                assert!((super::sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6, "sigmoid({x})");
                assert!((super::tanh(x) - x.tanh()).abs() < 1e-6, "tanh({x})");
            }
            assert!(super::sigmoid(-200.0) < 1e-30);
            assert_eq!(super::sigmoid(200.0), 1.0);
            assert_eq!(super::tanh(100.0), 1.0);
            assert_eq!(super::tanh(-100.0), -1.0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Autodiff: one graph node per call, its backward the hand-written pass above.

#[derive(Debug)]
struct RecurrenceGrad;

impl<B: RecurrenceBackend> Backward<B, 3> for RecurrenceGrad {
    /// Hidden weights, rows, outputs, cache, architecture, direction.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, Arch, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node, w_node, b_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (w, rows, outputs, cache, arch, reverse) = ops.state;
        let (d_x, d_w, d_b) = B::recurrence_backward(w, rows, outputs, cache, grad, arch, reverse);
        for (node, value) in [(x_node, d_x), (w_node, d_w), (b_node, d_b)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, value);
            }
        }
    }
}

#[derive(Debug)]
struct ProjectionGrad;

impl<B: RecurrenceBackend> Backward<B, 3> for ProjectionGrad {
    /// The inputs and the weights.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node, w_node, b_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, w) = ops.state;
        let (d_x, d_w, d_b) = B::projection_backward(x, w, grad);
        for (node, value) in [(x_node, d_x), (w_node, d_w), (b_node, d_b)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, value);
            }
        }
    }
}

#[derive(Debug)]
struct PoolGrad;

impl<B: RecurrenceBackend> Backward<B, 1> for PoolGrad {
    /// Rows, the step of each maximum.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [sequence] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (rows, argmax) = ops.state;
        if let Some(node) = sequence {
            grads.register::<B>(node.id, B::mean_max_pool_backward(rows, argmax, grad));
        }
    }
}

impl<B: RecurrenceBackend, C: CheckpointStrategy> RecurrenceBackend for Autodiff<B, C> {
    fn recurrence(
        x_proj: FloatTensor<Self>,
        w_hidden: FloatTensor<Self>,
        b_hidden: FloatTensor<Self>,
        rows: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let nodes = [x_proj.node(), w_hidden.node(), b_hidden.node()];
        let (x, w, b, rows) =
            (x_proj.into_primitive(), w_hidden.into_primitive(), b_hidden.into_primitive(), rows.into_primitive());
        match RecurrenceGrad.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (outputs, cache) = B::recurrence_with_cache(x, w.clone(), b, rows.clone(), arch, reverse);
                prep.finish((w, rows, outputs.clone(), cache, arch, reverse), outputs)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::recurrence(x, w, b, rows, arch, reverse)),
        }
    }

    fn recurrence_with_cache(
        _x_proj: FloatTensor<Self>,
        _w_hidden: FloatTensor<Self>,
        _b_hidden: FloatTensor<Self>,
        _rows: FloatTensor<Self>,
        _arch: Arch,
        _reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("only the inner backend's recurrence_with_cache is called (by recurrence)")
    }

    fn recurrence_backward(
        _w_hidden: FloatTensor<Self>,
        _rows: FloatTensor<Self>,
        _outputs: FloatTensor<Self>,
        _cache: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _arch: Arch,
        _reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("only the inner backend's recurrence_backward is called (by backward)")
    }

    fn projection(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [x.node(), w.node(), b.node()];
        let (x, w, b) = (x.into_primitive(), w.into_primitive(), b.into_primitive());
        match ProjectionGrad.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x.clone(), w.clone()), B::projection(x, w, b)),
            OpsKind::UnTracked(prep) => prep.finish(B::projection(x, w, b)),
        }
    }

    fn projection_backward(
        _x: FloatTensor<Self>,
        _w: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("only the inner backend's projection_backward is called (by backward)")
    }

    fn mean_max_pool(sequence: FloatTensor<Self>, rows: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [sequence.node()];
        let (sequence, rows) = (sequence.into_primitive(), rows.into_primitive());
        match PoolGrad.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (pooled, argmax) = B::mean_max_pool_with_argmax(sequence, rows.clone());
                prep.finish((rows, argmax), pooled)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::mean_max_pool(sequence, rows)),
        }
    }

    fn mean_max_pool_with_argmax(
        _sequence: FloatTensor<Self>,
        _rows: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("only the inner backend's mean_max_pool_with_argmax is called (by mean_max_pool)")
    }

    fn mean_max_pool_backward(
        _rows: FloatTensor<Self>,
        _argmax: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        unreachable!("only the inner backend's mean_max_pool_backward is called (by backward)")
    }
}
