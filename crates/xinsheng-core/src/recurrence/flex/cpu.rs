//! The step kernels of the recurrence on the CPU, forward and backward.

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
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
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
