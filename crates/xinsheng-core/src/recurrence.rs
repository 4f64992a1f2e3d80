//! The fused recurrence: one operation runs a whole layer-direction of an RNN, LSTM or GRU.
//!
//! The model projects the inputs of every step and gate in one matmul before calling
//! [`recurrence`]; the operation then runs the steps itself: one hidden matmul per step for all
//! gates, the gate arithmetic fused, padded steps (mask 0) leaving the state unchanged. Its
//! backward pass is written out by hand (backpropagation through time), so autodiff records one
//! node per layer-direction instead of ~30 per step.
//!
//! Backends: Flex (the CPU, native and WebAssembly) runs it in plain Rust below; every other
//! backend keeps the step-by-step reference in [`crate::model`] (see [`fused_on`]).
//!
//! Layouts (row-major): `x_proj [time, batch, gates·hidden]`, `w_hidden [hidden, gates·hidden]`,
//! `b_hidden [gates·hidden]`, `mask [time, batch, 1]`, output `[time, batch, hidden]`. Gate order
//! is the model's: GRU reset, update, candidate (reset applied after the hidden projection);
//! LSTM input, forget, cell, output.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::Arch;

/// Runs one direction of one recurrent layer; see the module documentation for the layouts.
pub fn recurrence(
    arch: Arch,
    reverse: bool,
    x_proj: Tensor<3>,
    w_hidden: Tensor<2>,
    b_hidden: Tensor<1>,
    mask: Tensor<3>,
) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::recurrence(
        x_proj.into_dispatch(),
        w_hidden.into_dispatch(),
        b_hidden.into_dispatch(),
        mask.into_dispatch(),
        arch,
        reverse,
    ))
}

/// Whether [`recurrence`] runs on `device` (with or without autodiff).
pub fn fused_on(device: &Device) -> bool {
    matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_))
}

#[backend_extension(Flex, Autodiff)]
pub trait RecurrenceBackend: Backend {
    /// The layer's outputs, `[time, batch, hidden]`.
    fn recurrence(
        x_proj: FloatTensor<Self>,
        w_hidden: FloatTensor<Self>,
        b_hidden: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> FloatTensor<Self>;

    /// The outputs and what the backward pass needs: per step the gate activations (and for the
    /// LSTM the cell state), `[time, batch, cache_width]`.
    fn recurrence_with_cache(
        x_proj: FloatTensor<Self>,
        w_hidden: FloatTensor<Self>,
        b_hidden: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Gradients of `x_proj`, `w_hidden` and `b_hidden` given the outputs' gradient.
    #[allow(clippy::too_many_arguments)]
    fn recurrence_backward(
        w_hidden: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        outputs: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

// ---------------------------------------------------------------------------------------------
// Flex: plain Rust over host memory.

type FlexTensor = FloatTensor<Flex>;

fn host(tensor: FlexTensor) -> (Vec<f32>, Vec<usize>) {
    let data = tensor.into_data().convert::<f32>();
    let shape = data.shape().to_vec();
    (data.try_into_vec::<f32>().expect("converted to f32"), shape)
}

fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

impl RecurrenceBackend for Flex {
    fn recurrence(
        x_proj: FlexTensor,
        w_hidden: FlexTensor,
        b_hidden: FlexTensor,
        mask: FlexTensor,
        arch: Arch,
        reverse: bool,
    ) -> FlexTensor {
        let (x, shape) = host(x_proj);
        let dims = Dims::new(arch, shape[0], shape[1], shape[2] / arch.gates());
        let outputs = cpu::forward(&dims, reverse, &x, &host(w_hidden).0, &host(b_hidden).0, &host(mask).0, None);
        flex(outputs, &[dims.time, dims.batch, dims.hidden])
    }

    fn recurrence_with_cache(
        x_proj: FlexTensor,
        w_hidden: FlexTensor,
        b_hidden: FlexTensor,
        mask: FlexTensor,
        arch: Arch,
        reverse: bool,
    ) -> (FlexTensor, FlexTensor) {
        let (x, shape) = host(x_proj);
        let dims = Dims::new(arch, shape[0], shape[1], shape[2] / arch.gates());
        let mut cache = vec![0f32; dims.time * dims.batch * dims.cache()];
        let (w, b, mask) = (host(w_hidden).0, host(b_hidden).0, host(mask).0);
        let outputs = cpu::forward(&dims, reverse, &x, &w, &b, &mask, Some(&mut cache));
        (flex(outputs, &[dims.time, dims.batch, dims.hidden]), flex(cache, &[dims.time, dims.batch, dims.cache()]))
    }

    fn recurrence_backward(
        w_hidden: FlexTensor,
        mask: FlexTensor,
        outputs: FlexTensor,
        cache: FlexTensor,
        grad: FlexTensor,
        arch: Arch,
        reverse: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (outputs, shape) = host(outputs);
        let dims = Dims::new(arch, shape[0], shape[1], shape[2]);
        let grads =
            cpu::backward(&dims, reverse, &host(w_hidden).0, &host(mask).0, &outputs, &host(cache).0, &host(grad).0);
        let width = dims.width();
        (
            flex(grads.x_proj, &[dims.time, dims.batch, width]),
            flex(grads.w_hidden, &[dims.hidden, width]),
            flex(grads.b_hidden, &[width]),
        )
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

    /// Values cached per step and sequence for the backward pass.
    fn cache(&self) -> usize {
        self.hidden
            * match self.arch {
                Arch::Rnn => 1,  // the new state
                Arch::Gru => 4,  // reset, update, candidate, hidden projection of the candidate
                Arch::Lstm => 6, // input, forget, cell, output gates, new cell, masked cell
            }
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
    use super::Dims;
    use crate::model::Arch;

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

    /// Runs the recurrence; fills `cache` (`[time, batch, d.cache()]`) when given one.
    pub(super) fn forward(
        d: &Dims,
        reverse: bool,
        x_proj: &[f32],
        w: &[f32],
        b: &[f32],
        mask: &[f32],
        mut cache: Option<&mut [f32]>,
    ) -> Vec<f32> {
        let (batch, hidden, width, cache_width) = (d.batch, d.hidden, d.width(), d.cache());
        let mut outputs = vec![0f32; d.time * batch * hidden];
        let mut h = vec![0f32; batch * hidden];
        let mut c = vec![0f32; batch * hidden];
        let mut hp = vec![0f32; batch * width];
        // Gate activations of one sequence at one step.
        let mut gates = vec![0f32; width];
        let mut c_new = vec![0f32; hidden];
        for t in d.order(reverse) {
            for row in hp.chunks_mut(width) {
                row.copy_from_slice(b);
            }
            matmul(&mut hp, &h, false, w, false, [batch, width, hidden], true);
            for s in 0..batch {
                let at = t * batch + s;
                let m = mask[at];
                let x = &x_proj[at * width..(at + 1) * width];
                let hp = &hp[s * width..(s + 1) * width];
                let h = &mut h[s * hidden..(s + 1) * hidden];
                let c = &mut c[s * hidden..(s + 1) * hidden];
                match d.arch {
                    Arch::Rnn => {
                        for ((g, &x), &hp) in gates.iter_mut().zip(x).zip(hp) {
                            *g = tanh(x + hp);
                        }
                        for (h, &g) in h.iter_mut().zip(&gates) {
                            *h += (g - *h) * m;
                        }
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
                            *h += (n + z * (*h - n) - *h) * m;
                        }
                    }
                    Arch::Lstm => {
                        for ((g, &x), &hp) in gates.iter_mut().zip(x).zip(hp) {
                            *g = sigmoid(x + hp);
                        }
                        // The cell block is a tanh: tanh(a) = 2 σ(2a) − 1.
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
                            c[j] += (c_new[j] - c[j]) * m;
                            h[j] += (o[j] * tanh(c_new[j]) - h[j]) * m;
                        }
                    }
                }
                if let Some(cache) = cache.as_deref_mut() {
                    let cached = &mut cache[at * cache_width..(at + 1) * cache_width];
                    match d.arch {
                        Arch::Rnn => cached.copy_from_slice(&gates),
                        Arch::Gru => {
                            cached[..width].copy_from_slice(&gates);
                            cached[width..].copy_from_slice(&hp[2 * hidden..]);
                        }
                        Arch::Lstm => {
                            cached[..width].copy_from_slice(&gates);
                            cached[width..width + hidden].copy_from_slice(&c_new);
                            cached[width + hidden..].copy_from_slice(c);
                        }
                    }
                }
                outputs[at * hidden..(at + 1) * hidden].copy_from_slice(h);
            }
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
        reverse: bool,
        w: &[f32],
        mask: &[f32],
        outputs: &[f32],
        cache: &[f32],
        grad: &[f32],
    ) -> Gradients {
        let (time, batch, hidden, width, cache_width) = (d.time, d.batch, d.hidden, d.width(), d.cache());
        let mut d_x = vec![0f32; time * batch * width];
        // Gradient of the hidden projection (differs from d_x in the GRU's candidate block).
        let mut d_hp = vec![0f32; time * batch * width];
        let mut d_h = vec![0f32; batch * hidden];
        let mut d_c = vec![0f32; batch * hidden];
        // The state each step started from, for the weight gradient.
        let mut h_prev_all = vec![0f32; time * batch * hidden];
        let zeros = vec![0f32; cache_width.max(hidden)];
        let order: Vec<usize> = d.order(reverse).collect();
        for &t in order.iter().rev() {
            let prev = d.previous(t, reverse);
            for s in 0..batch {
                let at = t * batch + s;
                let m = mask[at];
                let (h_prev, cache_prev) = match prev.map(|p| p * batch + s) {
                    Some(p) => (&outputs[p * hidden..(p + 1) * hidden], &cache[p * cache_width..(p + 1) * cache_width]),
                    None => (&zeros[..hidden], &zeros[..cache_width]),
                };
                h_prev_all[at * hidden..(at + 1) * hidden].copy_from_slice(h_prev);
                let cached = &cache[at * cache_width..(at + 1) * cache_width];
                let grad = &grad[at * hidden..(at + 1) * hidden];
                let dx = &mut d_x[at * width..(at + 1) * width];
                let dhp = &mut d_hp[at * width..(at + 1) * width];
                let dh_state = &mut d_h[s * hidden..(s + 1) * hidden];
                let dc_state = &mut d_c[s * hidden..(s + 1) * hidden];
                for j in 0..hidden {
                    let dh = grad[j] + dh_state[j];
                    // h = h_prev + m (h_new − h_prev)
                    let dh_new = m * dh;
                    let mut dh_prev = (1.0 - m) * dh;
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
                            let [i, f, g, o, c_new] = std::array::from_fn(|slot| cached[slot * hidden + j]);
                            let c_prev = cache_prev[5 * hidden + j];
                            // c = c_prev + m (c_new − c_prev); h_new = o tanh(c_new)
                            let dc = dc_state[j];
                            let tc = tanh(c_new);
                            let dc_new = m * dc + dh_new * o * (1.0 - tc * tc);
                            dc_state[j] = (1.0 - m) * dc + dc_new * f;
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
            // The hidden projection's share of the previous state's gradient: d_hp · Wᵀ.
            let step = t * batch * width..(t + 1) * batch * width;
            matmul(&mut d_h, &d_hp[step], false, w, true, [batch, hidden, width], true);
        }
        let mut w_hidden = vec![0f32; hidden * width];
        matmul(&mut w_hidden, &h_prev_all, true, &d_hp, false, [hidden, width, time * batch], false);
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
    /// Hidden weights, mask, outputs, cache, architecture, direction.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, Arch, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node, w_node, b_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (w, mask, outputs, cache, arch, reverse) = ops.state;
        let (d_x, d_w, d_b) = B::recurrence_backward(w, mask, outputs, cache, grad, arch, reverse);
        for (node, value) in [(x_node, d_x), (w_node, d_w), (b_node, d_b)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, value);
            }
        }
    }
}

impl<B: RecurrenceBackend, C: CheckpointStrategy> RecurrenceBackend for Autodiff<B, C> {
    fn recurrence(
        x_proj: FloatTensor<Self>,
        w_hidden: FloatTensor<Self>,
        b_hidden: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let nodes = [x_proj.node(), w_hidden.node(), b_hidden.node()];
        let (x, w, b, mask) =
            (x_proj.into_primitive(), w_hidden.into_primitive(), b_hidden.into_primitive(), mask.into_primitive());
        match RecurrenceGrad.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (outputs, cache) = B::recurrence_with_cache(x, w.clone(), b, mask.clone(), arch, reverse);
                prep.finish((w, mask, outputs.clone(), cache, arch, reverse), outputs)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::recurrence(x, w, b, mask, arch, reverse)),
        }
    }

    fn recurrence_with_cache(
        _x_proj: FloatTensor<Self>,
        _w_hidden: FloatTensor<Self>,
        _b_hidden: FloatTensor<Self>,
        _mask: FloatTensor<Self>,
        _arch: Arch,
        _reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("only the inner backend's recurrence_with_cache is called (by recurrence)")
    }

    fn recurrence_backward(
        _w_hidden: FloatTensor<Self>,
        _mask: FloatTensor<Self>,
        _outputs: FloatTensor<Self>,
        _cache: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _arch: Arch,
        _reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("only the inner backend's recurrence_backward is called (by backward)")
    }
}
