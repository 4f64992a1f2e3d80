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
//! Backends: Flex (the CPU, native and WebAssembly) runs it in plain Rust (`flex.rs`: the step
//! kernels in `flex/cpu.rs`, one shard of sequences per thread in `flex/sharded.rs`, the pooling
//! in `flex/pool.rs`); with the `wgpu` feature, burn's CubeCL backend (WebGPU) runs it as one
//! kernel launch per layer-direction (`cube.rs`); any other backend keeps the step-by-step
//! reference in [`crate::model`] (see [`fused_on`]). Under autodiff each call is one graph node
//! whose backward is the backend's hand-written pass (`autodiff.rs`). This file holds the
//! operations' API and the [`RecurrenceBackend`] trait every backend implements.
//!
//! Layouts (row-major): `rows [time, batch]`, the packed row of each real step and -1 for padding
//! (see [`pack`]); `x_proj [real, gates·hidden]`, one row per real step, time-major;
//! `w_hidden [hidden, gates·hidden]`, `b_hidden [gates·hidden]`; output `[time, batch, hidden]`,
//! a padded step holding the state before it. Gate order is the model's: GRU reset, update,
//! candidate (reset applied after the hidden projection); LSTM input, forget, cell, output.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDevice, backend_extension};
use burn::tensor::{Device, Tensor};

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

mod autodiff;
#[cfg(feature = "wgpu")]
mod cube;
mod flex;

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

/// Values cached per real step for the backward pass, on every backend.
fn cache_width(arch: Arch, hidden: usize) -> usize {
    hidden
        * match arch {
            Arch::Rnn => 1,  // the new state
            Arch::Gru => 4,  // reset, update, candidate, hidden projection of the candidate
            Arch::Lstm => 6, // input, forget, cell, output gates, new cell, previous cell
        }
}
