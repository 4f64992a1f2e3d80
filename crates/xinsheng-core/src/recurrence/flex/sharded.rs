//! Sequences are independent, so the recurrence of a large batch runs as one shard of
//! sequences per thread (natively; the browser's WebAssembly has one thread).

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
