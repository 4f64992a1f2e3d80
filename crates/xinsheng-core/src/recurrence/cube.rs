//! The fused recurrence on burn's CubeCL backends (WebGPU in the browser): one kernel launch per
//! layer-direction, forward and backward. Each cube runs one sequence through every step with
//! its state in workgroup memory; its units stride over the hidden units.

use burn::backend::Cube;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::{RecurrenceBackend, cache_width};
use crate::arch::Arch;

/// Units per cube: WebGPU guarantees 256 invocations per workgroup.
const MAX_UNITS: u32 = 256;

/// The kernels' compile-time name for `arch` (0 RNN, 1 GRU, 2 LSTM).
fn code(arch: Arch) -> u32 {
    match arch {
        Arch::Rnn => 0,
        Arch::Gru => 1,
        Arch::Lstm => 2,
    }
}

/// The packed row of step-and-sequence `at`; row 0 for padding (whose results are masked out).
#[cube]
fn packed_row<F: Float>(rows: &Tensor<F>, at: usize) -> usize {
    let value = rows[at];
    let mut row = 0usize;
    if value >= F::new(0.0) {
        row = u32::cast_from(value) as usize;
    }
    row
}

#[cube]
fn sigmoid<F: Float>(x: F) -> F {
    F::new(1.0) / (F::new(1.0) + (F::new(0.0) - x).exp())
}

/// One sequence (`CUBE_POS_X`) through every step. Padded steps (row −1) compute on row 0 and
/// are masked out, so that every barrier stays in uniform control flow.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_kernel<F: Float>(
    x_proj: &Tensor<F>,      // [real, gates·hidden]
    w: &Tensor<F>,           // [hidden, gates·hidden]
    b: &Tensor<F>,           // [gates·hidden]
    rows: &Tensor<F>,        // [time, batch]
    outputs: &mut Tensor<F>, // [time, batch, hidden]
    cache: &mut Tensor<F>,   // [real, cache] (one unused row when not caching)
    reverse: u32,
    write_cache: u32,
    #[comptime] arch: u32,
    #[comptime] hidden: usize,
    #[comptime] gates: usize,
    #[define(F)] _dtype: ElemType,
) {
    let s = CUBE_POS_X as usize;
    let units = CUBE_DIM_X as usize;
    let batch = rows.shape(1);
    let time = rows.shape(0);
    let width = gates * hidden;
    let cache_w = cache.shape(1);
    let mut h = Shared::<[F]>::new_slice(hidden);
    let mut c = Shared::<[F]>::new_slice(hidden);
    let mut hp = Shared::<[F]>::new_slice(comptime!(gates * hidden));

    let mut j = UNIT_POS_X as usize;
    while j < hidden {
        h[j] = F::new(0.0);
        c[j] = F::new(0.0);
        j += units;
    }
    sync_cube();

    for step in 0..time {
        let mut t = step;
        if reverse == 1 {
            t = time - 1 - step;
        }
        let real = rows[t * batch + s] >= F::new(0.0);
        let m = F::cast_from(real as u32);
        let row = packed_row::<F>(rows, t * batch + s);

        // Hidden projection of every gate: hp = b + h · W.
        let mut g = UNIT_POS_X as usize;
        while g < width {
            let mut sum = b[g];
            for k in 0..hidden {
                sum += h[k] * w[k * width + g];
            }
            hp[g] = sum;
            g += units;
        }
        sync_cube();

        let x = row * width;
        let cached = row * cache_w;
        let mut j = UNIT_POS_X as usize;
        while j < hidden {
            let h_old = h[j];
            if comptime!(arch == 0) {
                let h_new = (x_proj[x + j] + hp[j]).tanh();
                h[j] = h_old + (h_new - h_old) * m;
                if real && write_cache == 1 {
                    cache[cached + j] = h_new;
                }
            } else if comptime!(arch == 1) {
                let r = sigmoid::<F>(x_proj[x + j] + hp[j]);
                let z = sigmoid::<F>(x_proj[x + hidden + j] + hp[hidden + j]);
                let hn = hp[2 * hidden + j];
                let n = (x_proj[x + 2 * hidden + j] + r * hn).tanh();
                let h_new = n + z * (h_old - n);
                h[j] = h_old + (h_new - h_old) * m;
                if real && write_cache == 1 {
                    cache[cached + j] = r;
                    cache[cached + hidden + j] = z;
                    cache[cached + 2 * hidden + j] = n;
                    cache[cached + 3 * hidden + j] = hn;
                }
            } else {
                let i = sigmoid::<F>(x_proj[x + j] + hp[j]);
                let f = sigmoid::<F>(x_proj[x + hidden + j] + hp[hidden + j]);
                let gg = (x_proj[x + 2 * hidden + j] + hp[2 * hidden + j]).tanh();
                let o = sigmoid::<F>(x_proj[x + 3 * hidden + j] + hp[3 * hidden + j]);
                let c_old = c[j];
                let c_new = f * c_old + i * gg;
                let h_new = o * c_new.tanh();
                c[j] = c_old + (c_new - c_old) * m;
                h[j] = h_old + (h_new - h_old) * m;
                if real && write_cache == 1 {
                    cache[cached + j] = i;
                    cache[cached + hidden + j] = f;
                    cache[cached + 2 * hidden + j] = gg;
                    cache[cached + 3 * hidden + j] = o;
                    cache[cached + 4 * hidden + j] = c_new;
                    cache[cached + 5 * hidden + j] = c_old;
                }
            }
            outputs[(t * batch + s) * hidden + j] = h[j];
            j += units;
        }
        sync_cube();
    }
}

/// Backpropagation through time for one sequence (`CUBE_POS_X`): the gradients of its packed
/// inputs and hidden projections, and the states those steps started from (the weight gradient
/// is one matmul over them afterwards).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn backward_kernel<F: Float>(
    w: &Tensor<F>,          // [hidden, gates·hidden]
    rows: &Tensor<F>,       // [time, batch]
    outputs: &Tensor<F>,    // [time, batch, hidden]
    cache: &Tensor<F>,      // [real, cache]
    grad: &Tensor<F>,       // [time, batch, hidden]
    d_x: &mut Tensor<F>,    // [real, gates·hidden]
    d_hp: &mut Tensor<F>,   // [real, gates·hidden]
    h_prev: &mut Tensor<F>, // [real, hidden]
    reverse: u32,
    #[comptime] arch: u32,
    #[comptime] hidden: usize,
    #[comptime] gates: usize,
    #[define(F)] _dtype: ElemType,
) {
    let s = CUBE_POS_X as usize;
    let units = CUBE_DIM_X as usize;
    let batch = rows.shape(1);
    let time = rows.shape(0);
    let width = gates * hidden;
    let cache_w = cache.shape(1);
    // The state gradients carried backwards, and one step's hidden-projection gradient.
    let mut dh = Shared::<[F]>::new_slice(hidden);
    let mut dc = Shared::<[F]>::new_slice(hidden);
    let mut dhp = Shared::<[F]>::new_slice(comptime!(gates * hidden));

    let mut j = UNIT_POS_X as usize;
    while j < hidden {
        dh[j] = F::new(0.0);
        dc[j] = F::new(0.0);
        j += units;
    }
    sync_cube();

    for step in 0..time {
        // The steps in the reverse of the order the forward pass visited them.
        let mut t = time - 1 - step;
        let mut has_prev = t > 0;
        let mut prev = 0usize;
        if reverse == 1 {
            t = step;
            has_prev = t + 1 < time;
            if has_prev {
                prev = t + 1;
            }
        } else if has_prev {
            prev = t - 1;
        }
        let real = rows[t * batch + s] >= F::new(0.0);
        let m = F::cast_from(real as u32);
        let row = packed_row::<F>(rows, t * batch + s);
        let x = row * width;
        let cached = row * cache_w;

        // Each unit reads and writes only its own dh[j], dc[j] here.
        let mut j = UNIT_POS_X as usize;
        while j < hidden {
            let total = dh[j] + grad[(t * batch + s) * hidden + j];
            let dh_new = total * m;
            let mut dh_prev = total * (F::new(1.0) - m);
            let mut h_before = F::new(0.0);
            if has_prev {
                h_before = outputs[(prev * batch + s) * hidden + j];
            }
            if comptime!(arch == 0) {
                let h_new = cache[cached + j];
                dhp[j] = dh_new * (F::new(1.0) - h_new * h_new);
            } else if comptime!(arch == 1) {
                let r = cache[cached + j];
                let z = cache[cached + hidden + j];
                let n = cache[cached + 2 * hidden + j];
                let hn = cache[cached + 3 * hidden + j];
                let dn = dh_new * (F::new(1.0) - z);
                let dz = dh_new * (h_before - n);
                dh_prev += dh_new * z;
                let dan = dn * (F::new(1.0) - n * n);
                dhp[j] = dan * hn * r * (F::new(1.0) - r);
                dhp[hidden + j] = dz * z * (F::new(1.0) - z);
                dhp[2 * hidden + j] = dan * r;
                if real {
                    // The candidate's input gradient lacks the reset factor.
                    d_x[x + 2 * hidden + j] = dan;
                }
            } else {
                let i = cache[cached + j];
                let f = cache[cached + hidden + j];
                let gg = cache[cached + 2 * hidden + j];
                let o = cache[cached + 3 * hidden + j];
                let c_new = cache[cached + 4 * hidden + j];
                let c_prev = cache[cached + 5 * hidden + j];
                let dc_j = dc[j];
                let tc = c_new.tanh();
                let dc_new = m * dc_j + dh_new * o * (F::new(1.0) - tc * tc);
                dc[j] = (F::new(1.0) - m) * dc_j + dc_new * f;
                dhp[j] = dc_new * gg * i * (F::new(1.0) - i);
                dhp[hidden + j] = dc_new * c_prev * f * (F::new(1.0) - f);
                dhp[2 * hidden + j] = dc_new * i * (F::new(1.0) - gg * gg);
                dhp[3 * hidden + j] = dh_new * tc * o * (F::new(1.0) - o);
            }
            if real {
                h_prev[row * hidden + j] = h_before;
            }
            dh[j] = dh_prev;
            j += units;
        }
        sync_cube();

        let mut g = UNIT_POS_X as usize;
        while g < width {
            if real {
                d_hp[x + g] = dhp[g];
                // Input and hidden projections share gate gradients, but for the GRU candidate.
                let shared_gradient = comptime!(arch != 1) || g < 2 * hidden;
                if shared_gradient {
                    d_x[x + g] = dhp[g];
                }
            }
            g += units;
        }
        // The previous state's share through the hidden projection: dhp · Wᵀ.
        let mut k = UNIT_POS_X as usize;
        while k < hidden {
            let mut sum = F::new(0.0);
            for g in 0..width {
                sum += dhp[g] * w[k * width + g];
            }
            dh[k] += sum;
            k += units;
        }
        sync_cube();
    }
}

fn units(hidden: usize) -> u32 {
    (hidden as u32).clamp(1, MAX_UNITS)
}

fn forward(
    x_proj: CubeTensor,
    w: CubeTensor,
    b: CubeTensor,
    rows: CubeTensor,
    arch: Arch,
    reverse: bool,
    with_cache: bool,
) -> (CubeTensor, CubeTensor) {
    let (x_proj, w, b, rows) = (into_contiguous(x_proj), into_contiguous(w), into_contiguous(b), into_contiguous(rows));
    let [time, batch] = rows.shape().dims::<2>();
    let [hidden, _] = w.shape().dims::<2>();
    let real = x_proj.shape().dims::<2>()[0];
    let (client, device, dtype) = (x_proj.client.clone(), x_proj.device.clone(), x_proj.dtype);
    let outputs = empty_device_dtype(client.clone(), device.clone(), Shape::new([time, batch, hidden]), dtype);
    let cache_rows = if with_cache { real.max(1) } else { 1 };
    let cache = empty_device_dtype(client.clone(), device, Shape::new([cache_rows, cache_width(arch, hidden)]), dtype);
    if batch > 0 && time > 0 {
        forward_kernel::launch(
            &client,
            CubeCount::Static(batch as u32, 1, 1),
            CubeDim::new_1d(units(hidden)),
            x_proj.into_tensor_arg(),
            w.into_tensor_arg(),
            b.into_tensor_arg(),
            rows.into_tensor_arg(),
            outputs.clone().into_tensor_arg(),
            cache.clone().into_tensor_arg(),
            reverse as u32,
            with_cache as u32,
            code(arch),
            hidden,
            arch.gates(),
            dtype_to_storage_type(dtype),
        );
    }
    (outputs, cache)
}

impl RecurrenceBackend for Cube {
    fn recurrence(
        x_proj: FloatTensor<Self>,
        w_hidden: FloatTensor<Self>,
        b_hidden: FloatTensor<Self>,
        rows: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> FloatTensor<Self> {
        forward(x_proj, w_hidden, b_hidden, rows, arch, reverse, false).0
    }

    fn recurrence_with_cache(
        x_proj: FloatTensor<Self>,
        w_hidden: FloatTensor<Self>,
        b_hidden: FloatTensor<Self>,
        rows: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        forward(x_proj, w_hidden, b_hidden, rows, arch, reverse, true)
    }

    fn recurrence_backward(
        w_hidden: FloatTensor<Self>,
        rows: FloatTensor<Self>,
        outputs: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        arch: Arch,
        reverse: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (w, rows, outputs, cache, grad) = (
            into_contiguous(w_hidden),
            into_contiguous(rows),
            into_contiguous(outputs),
            into_contiguous(cache),
            into_contiguous(grad),
        );
        let [time, batch] = rows.shape().dims::<2>();
        let [hidden, width] = w.shape().dims::<2>();
        let real = cache.shape().dims::<2>()[0];
        let (client, device, dtype) = (w.client.clone(), w.device.clone(), w.dtype);
        let zeros = |shape: [usize; 2]| Self::float_zeros(Shape::new(shape), &device, dtype.into());
        let (d_x, d_hp, h_prev) = (zeros([real, width]), zeros([real, width]), zeros([real, hidden]));
        if batch > 0 && time > 0 {
            backward_kernel::launch(
                &client,
                CubeCount::Static(batch as u32, 1, 1),
                CubeDim::new_1d(units(hidden)),
                w.into_tensor_arg(),
                rows.into_tensor_arg(),
                outputs.into_tensor_arg(),
                cache.into_tensor_arg(),
                grad.into_tensor_arg(),
                d_x.clone().into_tensor_arg(),
                d_hp.clone().into_tensor_arg(),
                h_prev.clone().into_tensor_arg(),
                reverse as u32,
                code(arch),
                hidden,
                arch.gates(),
                dtype_to_storage_type(dtype),
            );
        }
        // Over the real steps: dW = h_prevᵀ · d_hp, db = Σ d_hp.
        let d_w = Self::float_matmul(Self::float_transpose(h_prev), d_hp.clone());
        let d_b = Self::float_reshape(Self::float_sum_dim(d_hp, 0), Shape::new([width]));
        (d_x, d_w, d_b)
    }
}
