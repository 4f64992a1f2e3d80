//! The fused recurrence on burn's CubeCL backends (WebGPU in the browser): one kernel launch per
//! layer-direction, forward and backward. A cube runs one sequence (a single review, and the
//! backward pass; its units stride over the hidden units) or a tile of up to 8 sequences
//! (batched forward; one unit per hidden unit) through every step with the states in workgroup
//! memory. Also here: the input projection's matmul ([`matmul_kernel`], tiled the same way) and
//! the one-pass mean and max pooling ([`pool_forward_kernel`], [`pool_backward_kernel`]).

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

/// One hidden unit `j`'s step of `arch`'s cell, the arithmetic both forward kernels share: the
/// unit's gates from its input projections (`x_proj[x + k·hidden + j]` for gate `k`) and hidden
/// projections (`hp[at + k·stride]`), in the module's gate order. Returns the new state and cell
/// (the cell is the LSTM's; the other cells pass `c_old` through), both kept at `h_old` /
/// `c_old` where `m` is 0 (a padded step). When `write`, the step's cache row (`cached`, the
/// values [`cache_width`] counts) is filled for the backward pass.
#[cube]
#[allow(clippy::too_many_arguments)]
// Every arm sets `h_new`; a kernel variable needs a value where it is declared.
#[allow(unused_assignments)]
fn cell<F: Float>(
    x_proj: &Tensor<F>,
    x: usize,
    j: usize,
    hp: &[F],
    at: usize,
    stride: usize,
    h_old: F,
    c_old: F,
    m: F,
    cache: &mut Tensor<F>,
    cached: usize,
    write: bool,
    #[comptime] arch: Arch,
    #[comptime] hidden: usize,
) -> (F, F) {
    let mut h_new = h_old;
    let mut c_new = c_old;
    #[comptime]
    match arch {
        Arch::Rnn => {
            h_new = (x_proj[x + j] + hp[at]).tanh();
            if write {
                cache[cached + j] = h_new;
            }
        }
        Arch::Gru => {
            let r = sigmoid::<F>(x_proj[x + j] + hp[at]);
            let z = sigmoid::<F>(x_proj[x + hidden + j] + hp[at + stride]);
            let hn = hp[at + 2 * stride];
            let n = (x_proj[x + 2 * hidden + j] + r * hn).tanh();
            h_new = n + z * (h_old - n);
            if write {
                cache[cached + j] = r;
                cache[cached + hidden + j] = z;
                cache[cached + 2 * hidden + j] = n;
                cache[cached + 3 * hidden + j] = hn;
            }
        }
        Arch::Lstm => {
            let i = sigmoid::<F>(x_proj[x + j] + hp[at]);
            let f = sigmoid::<F>(x_proj[x + hidden + j] + hp[at + stride]);
            let gg = (x_proj[x + 2 * hidden + j] + hp[at + 2 * stride]).tanh();
            let o = sigmoid::<F>(x_proj[x + 3 * hidden + j] + hp[at + 3 * stride]);
            c_new = f * c_old + i * gg;
            h_new = o * c_new.tanh();
            if write {
                cache[cached + j] = i;
                cache[cached + hidden + j] = f;
                cache[cached + 2 * hidden + j] = gg;
                cache[cached + 3 * hidden + j] = o;
                cache[cached + 4 * hidden + j] = c_new;
                cache[cached + 5 * hidden + j] = c_old;
            }
        }
    }
    (h_old + (h_new - h_old) * m, c_old + (c_new - c_old) * m)
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
    #[comptime] arch: Arch,
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
            let write = real && write_cache == 1;
            let (h_new, c_new) =
                cell::<F>(x_proj, x, j, hp.as_slice(), j, hidden, h[j], c[j], m, cache, cached, write, arch, hidden);
            h[j] = h_new;
            c[j] = c_new;
            outputs[(t * batch + s) * hidden + j] = h_new;
            j += units;
        }
        sync_cube();
    }
}

/// `tile` sequences (from `CUBE_POS_X · tile`) through every step, for batches: unit `j` (one
/// per hidden unit, `CUBE_DIM_X == hidden`) computes the hidden projection of unit `j`'s gates
/// for every sequence of the tile, so each hidden weight is read once per step for `tile`
/// sequences instead of once per sequence (what [`forward_kernel`] does), and the gate
/// arithmetic needs no shared projection: it is the same unit's registers. The sums run in the
/// same order as [`forward_kernel`]'s. Lanes past the batch and padded steps compute on row 0
/// and are masked out, so every barrier stays in uniform control flow.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_tiled_kernel<F: Float>(
    x_proj: &Tensor<F>,      // [real, gates·hidden]
    w: &Tensor<F>,           // [hidden, gates·hidden]
    b: &Tensor<F>,           // [gates·hidden]
    rows: &Tensor<F>,        // [time, batch]
    outputs: &mut Tensor<F>, // [time, batch, hidden]
    cache: &mut Tensor<F>,   // [real, cache] (one unused row when not caching)
    reverse: u32,
    write_cache: u32,
    #[comptime] arch: Arch,
    #[comptime] hidden: usize,
    #[comptime] gates: usize,
    #[comptime] tile: usize,
    #[define(F)] _dtype: ElemType,
) {
    let first = CUBE_POS_X as usize * tile;
    let j = UNIT_POS_X as usize;
    let batch = rows.shape(1);
    let time = rows.shape(0);
    let width = gates * hidden;
    let cache_w = cache.shape(1);
    // Every sequence's state (read whole by every unit), and unit j's cells and projections.
    let mut h = Shared::<[F]>::new_slice(comptime!(tile * hidden));
    let mut c = Array::<F>::new(tile);
    let mut hp = Array::<F>::new(comptime!(tile * gates));
    let mut state = Array::<F>::new(tile);

    #[unroll]
    for r in 0..tile {
        h[r * hidden + j] = F::new(0.0);
        c[r] = F::new(0.0);
    }
    // The tile's longest sequence: steps from there on are padding for every lane (a batch pads
    // each sequence at its end, and batches come sorted by length, so a tile's lengths are
    // close). Those steps skip the projection; the loop still visits them, so that every unit
    // meets every barrier.
    let mut length = 0usize;
    for t in 0..time {
        #[unroll]
        for r in 0..tile {
            let s = first + r;
            if s < batch && rows[t * batch + s] >= F::new(0.0) {
                length = t + 1;
            }
        }
    }
    sync_cube();

    for step in 0..time {
        let mut t = step;
        if reverse == 1 {
            t = time - 1 - step;
        }

        // Hidden projections of unit j's gates for the whole tile: hp = b + h · W (b alone on
        // an all-padding step, which every lane masks out).
        #[unroll]
        for g in 0..gates {
            let bias = b[g * hidden + j];
            #[unroll]
            for r in 0..tile {
                hp[g * tile + r] = bias;
            }
        }
        if t < length {
            for k in 0..hidden {
                // Each state value read from workgroup memory once, for every gate.
                #[unroll]
                for r in 0..tile {
                    state[r] = h[r * hidden + k];
                }
                #[unroll]
                for g in 0..gates {
                    let weight = w[k * width + g * hidden + j];
                    #[unroll]
                    for r in 0..tile {
                        hp[g * tile + r] += state[r] * weight;
                    }
                }
            }
        }
        sync_cube();

        #[unroll]
        for r in 0..tile {
            let s = first + r;
            let in_batch = s < batch;
            let mut real = false;
            let mut row = 0usize;
            if in_batch {
                real = rows[t * batch + s] >= F::new(0.0);
                row = packed_row::<F>(rows, t * batch + s);
            }
            let m = F::cast_from(real as u32);
            let x = row * width;
            let cached = row * cache_w;
            let write = real && write_cache == 1;
            let (h_new, c_new) = cell::<F>(
                x_proj,
                x,
                j,
                hp.as_slice(),
                r,
                tile,
                h[r * hidden + j],
                c[r],
                m,
                cache,
                cached,
                write,
                arch,
                hidden,
            );
            h[r * hidden + j] = h_new;
            c[r] = c_new;
            if in_batch {
                outputs[(t * batch + s) * hidden + j] = h[r * hidden + j];
            }
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
    #[comptime] arch: Arch,
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
            if comptime!(arch == Arch::Rnn) {
                let h_new = cache[cached + j];
                dhp[j] = dh_new * (F::new(1.0) - h_new * h_new);
            } else if comptime!(arch == Arch::Gru) {
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
                let shared_gradient = comptime!(arch != Arch::Gru) || g < 2 * hidden;
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

/// [`super::mean_max_pool`]: one unit per `(sequence, feature)` walks the steps.
#[cube(launch)]
fn pool_forward_kernel<F: Float>(
    sequence: &Tensor<F>,   // [time, batch, width]
    rows: &Tensor<F>,       // [time, batch]
    pooled: &mut Tensor<F>, // [batch, 2·width]
    argmax: &mut Tensor<F>, // [batch, width]
    #[define(F)] _dtype: ElemType,
) {
    let time = rows.shape(0);
    let batch = rows.shape(1);
    let width = argmax.shape(1);
    let i = ABSOLUTE_POS;
    if i >= batch * width {
        terminate!();
    }
    let s = i / width;
    let w = i % width;
    let mut sum = F::new(0.0);
    let mut max = F::new(-10.0);
    let mut arg = F::new(-1.0);
    let mut length = 0u32;
    for t in 0..time {
        if rows[t * batch + s] >= F::new(0.0) {
            let x = sequence[(t * batch + s) * width + w];
            sum += x;
            length += 1;
            if x > max || arg < F::new(0.0) {
                max = x;
                arg = F::cast_from(t as u32);
            }
        }
    }
    if length == 0 {
        length = 1;
    }
    pooled[s * 2 * width + w] = sum / F::cast_from(length);
    pooled[s * 2 * width + width + w] = max;
    argmax[s * width + w] = arg;
}

/// The gradient of [`pool_forward_kernel`]'s sequence: one unit per `(sequence, feature)`.
#[cube(launch)]
fn pool_backward_kernel<F: Float>(
    rows: &Tensor<F>,   // [time, batch]
    argmax: &Tensor<F>, // [batch, width]
    grad: &Tensor<F>,   // [batch, 2·width]
    d: &mut Tensor<F>,  // [time, batch, width]
    #[define(F)] _dtype: ElemType,
) {
    let time = rows.shape(0);
    let batch = rows.shape(1);
    let width = argmax.shape(1);
    let i = ABSOLUTE_POS;
    if i >= batch * width {
        terminate!();
    }
    let s = i / width;
    let w = i % width;
    let mut length = 0u32;
    for t in 0..time {
        if rows[t * batch + s] >= F::new(0.0) {
            length += 1;
        }
    }
    if length == 0 {
        length = 1;
    }
    let d_mean = grad[s * 2 * width + w] / F::cast_from(length);
    let d_max = grad[s * 2 * width + width + w];
    let arg = argmax[s * width + w];
    for t in 0..time {
        let mut value = F::new(0.0);
        if rows[t * batch + s] >= F::new(0.0) {
            value = d_mean;
            if arg == F::cast_from(t as u32) {
                value += d_max;
            }
        }
        d[(t * batch + s) * width + w] = value;
    }
}

/// `out [n, m] = a · b (+ bias)`, `a [n, k]` (stored `[k, n]` when `a_transposed`), `b [k, m]`
/// (stored `[m, k]` when `b_transposed`), `bias [m]`. A cube computes `MATMUL_ROWS` rows of
/// `MATMUL_COLUMNS · CUBE_DIM_X` columns: it stages its rows of `a`, `MATMUL_DEPTH` at a time, in
/// workgroup memory, and each unit keeps the sums of `MATMUL_COLUMNS` columns (`CUBE_DIM_X`
/// apart, so that neighbouring units read neighbouring values of `b`) for every staged row in
/// registers: per step of the depth, `MATMUL_ROWS + MATMUL_COLUMNS` loads feed
/// `MATMUL_ROWS · MATMUL_COLUMNS` multiply-adds. The recurrence's layout, for the same reason:
/// burn's general matmul ran the input projections so slowly on SwiftShader that they took
/// ~80 % of a batched classify.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn matmul_kernel<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    bias: &Tensor<F>,
    out: &mut Tensor<F>,
    #[comptime] a_transposed: bool,
    #[comptime] b_transposed: bool,
    #[comptime] with_bias: bool,
    #[define(F)] _dtype: ElemType,
) {
    let n = out.shape(0);
    let m = out.shape(1);
    let k = if comptime!(a_transposed) { a.shape(0) } else { a.shape(1) };
    let units = CUBE_DIM_X as usize;
    let unit = UNIT_POS_X as usize;
    let column = CUBE_POS_X as usize * units * MATMUL_COLUMNS + unit;
    let first = CUBE_POS_Y as usize * MATMUL_ROWS;
    let mut staged = Shared::<[F]>::new_slice(comptime!(MATMUL_ROWS * MATMUL_DEPTH));
    let mut sums = Array::<F>::new(comptime!(MATMUL_ROWS * MATMUL_COLUMNS));
    let mut weights = Array::<F>::new(MATMUL_COLUMNS);
    #[unroll]
    for i in 0..MATMUL_ROWS * MATMUL_COLUMNS {
        sums[i] = F::new(0.0);
    }
    let mut start = 0usize;
    while start < k {
        // Stage rows first.. of a, depths start.. (zeros past the ends).
        let mut e = unit;
        while e < MATMUL_ROWS * MATMUL_DEPTH {
            let r = e / MATMUL_DEPTH;
            let d = start + e % MATMUL_DEPTH;
            let mut value = F::new(0.0);
            if first + r < n && d < k {
                value = if comptime!(a_transposed) { a[d * n + first + r] } else { a[(first + r) * k + d] };
            }
            staged[e] = value;
            e += units;
        }
        sync_cube();
        let mut depth = k - start;
        if depth > MATMUL_DEPTH {
            depth = MATMUL_DEPTH;
        }
        for d in 0..depth {
            #[unroll]
            for c in 0..MATMUL_COLUMNS {
                let j = column + c * units;
                let mut weight = F::new(0.0);
                if j < m {
                    weight = if comptime!(b_transposed) { b[j * k + start + d] } else { b[(start + d) * m + j] };
                }
                weights[c] = weight;
            }
            #[unroll]
            for r in 0..MATMUL_ROWS {
                let value = staged[r * MATMUL_DEPTH + d];
                #[unroll]
                for c in 0..MATMUL_COLUMNS {
                    sums[r * MATMUL_COLUMNS + c] += value * weights[c];
                }
            }
        }
        sync_cube();
        start += MATMUL_DEPTH;
    }
    #[unroll]
    for c in 0..MATMUL_COLUMNS {
        let j = column + c * units;
        if j < m {
            let add = if comptime!(with_bias) { bias[j] } else { F::new(0.0) };
            #[unroll]
            for r in 0..MATMUL_ROWS {
                if first + r < n {
                    out[(first + r) * m + j] = sums[r * MATMUL_COLUMNS + c] + add;
                }
            }
        }
    }
}

/// Rows and columns of [`matmul_kernel`]'s tiles, its units, and the depth it stages at once.
/// Chosen on SwiftShader, the only WebGPU this work could measure: 8 rows × 8 columns on 16
/// units classified ~8 % faster than 8 × 4 on 32 or 16 × 4 on 32, and 4 × 8 on 32 ~30 % slower.
/// A real GPU, whose warps are 32 or 64 wide, may want more units.
const MATMUL_ROWS: usize = 8;
const MATMUL_COLUMNS: usize = 8;
const MATMUL_UNITS: u32 = 16;
const MATMUL_DEPTH: usize = 64;

/// [`matmul_kernel`] on `a` and `b` (with the transposes it describes) plus `bias`.
fn matmul(
    a: CubeTensor,
    a_transposed: bool,
    b: CubeTensor,
    b_transposed: bool,
    bias: Option<CubeTensor>,
) -> CubeTensor {
    let (a, b) = (into_contiguous(a), into_contiguous(b));
    let [a0, a1] = a.shape().dims::<2>();
    let [b0, b1] = b.shape().dims::<2>();
    let n = if a_transposed { a1 } else { a0 };
    let m = if b_transposed { b0 } else { b1 };
    let (client, device, dtype) = (a.client.clone(), a.device.clone(), a.dtype);
    let out = empty_device_dtype(client.clone(), device, Shape::new([n, m]), dtype);
    let with_bias = bias.is_some();
    // Without a bias the kernel reads none: any tensor stands in.
    let bias = bias.map(into_contiguous).unwrap_or_else(|| b.clone());
    if n > 0 && m > 0 {
        matmul_kernel::launch(
            &client,
            CubeCount::Static(
                (m as u32).div_ceil(MATMUL_UNITS * MATMUL_COLUMNS as u32),
                n.div_ceil(MATMUL_ROWS) as u32,
                1,
            ),
            CubeDim::new_1d(MATMUL_UNITS),
            a.into_tensor_arg(),
            b.into_tensor_arg(),
            bias.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            a_transposed,
            b_transposed,
            with_bias,
            dtype_to_storage_type(dtype),
        );
    }
    out
}

/// Units per cube of the pooling kernels.
const POOL_UNITS: u32 = 64;

fn units(hidden: usize) -> u32 {
    (hidden as u32).clamp(1, MAX_UNITS)
}

/// Sequences per cube in the forward pass: up to 8 for a batch (1, the one-sequence kernel,
/// for a single review, whose latency a tile would only add lanes to, and where one unit per
/// hidden unit does not fit a workgroup). Each tile size compiles its own kernel.
fn tile(batch: usize, hidden: usize) -> usize {
    if hidden as u32 > MAX_UNITS {
        return 1;
    }
    match batch {
        0..=1 => 1,
        2..=3 => 2,
        4..=7 => 4,
        _ => 8,
    }
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
    let tile = tile(batch, hidden);
    if batch > 0 && time > 0 && tile > 1 {
        forward_tiled_kernel::launch(
            &client,
            CubeCount::Static(batch.div_ceil(tile) as u32, 1, 1),
            CubeDim::new_1d(hidden as u32),
            x_proj.into_tensor_arg(),
            w.into_tensor_arg(),
            b.into_tensor_arg(),
            rows.into_tensor_arg(),
            outputs.clone().into_tensor_arg(),
            cache.clone().into_tensor_arg(),
            reverse as u32,
            with_cache as u32,
            arch,
            hidden,
            arch.gates(),
            tile,
            dtype_to_storage_type(dtype),
        );
    } else if batch > 0 && time > 0 {
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
            arch,
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
                arch,
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

    fn projection(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        matmul(x, false, w, false, Some(b))
    }

    fn projection_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let d_x = matmul(grad.clone(), false, w, true, None);
        let d_w = matmul(x, true, grad.clone(), false, None);
        let [_, width] = grad.shape().dims::<2>();
        let d_b = Self::float_reshape(Self::float_sum_dim(grad, 0), Shape::new([width]));
        (d_x, d_w, d_b)
    }

    fn mean_max_pool(sequence: FloatTensor<Self>, rows: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::mean_max_pool_with_argmax(sequence, rows).0
    }

    fn mean_max_pool_with_argmax(
        sequence: FloatTensor<Self>,
        rows: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (sequence, rows) = (into_contiguous(sequence), into_contiguous(rows));
        let [_, batch, width] = sequence.shape().dims::<3>();
        let (client, device, dtype) = (sequence.client.clone(), sequence.device.clone(), sequence.dtype);
        let pooled = empty_device_dtype(client.clone(), device.clone(), Shape::new([batch, 2 * width]), dtype);
        let argmax = empty_device_dtype(client.clone(), device, Shape::new([batch, width]), dtype);
        let units = batch * width;
        if units > 0 {
            pool_forward_kernel::launch(
                &client,
                CubeCount::Static((units as u32).div_ceil(POOL_UNITS), 1, 1),
                CubeDim::new_1d(POOL_UNITS),
                sequence.into_tensor_arg(),
                rows.into_tensor_arg(),
                pooled.clone().into_tensor_arg(),
                argmax.clone().into_tensor_arg(),
                dtype_to_storage_type(dtype),
            );
        }
        (pooled, argmax)
    }

    fn mean_max_pool_backward(
        rows: FloatTensor<Self>,
        argmax: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (rows, argmax, grad) = (into_contiguous(rows), into_contiguous(argmax), into_contiguous(grad));
        let [time, batch] = rows.shape().dims::<2>();
        let [_, width] = argmax.shape().dims::<2>();
        let (client, device, dtype) = (grad.client.clone(), grad.device.clone(), grad.dtype);
        let d = empty_device_dtype(client.clone(), device, Shape::new([time, batch, width]), dtype);
        let units = batch * width;
        if units > 0 && time > 0 {
            pool_backward_kernel::launch(
                &client,
                CubeCount::Static((units as u32).div_ceil(POOL_UNITS), 1, 1),
                CubeDim::new_1d(POOL_UNITS),
                rows.into_tensor_arg(),
                argmax.into_tensor_arg(),
                grad.into_tensor_arg(),
                d.clone().into_tensor_arg(),
                dtype_to_storage_type(dtype),
            );
        }
        d
    }
}
