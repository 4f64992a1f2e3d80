//! [`mean_max_pool`](super::super::mean_max_pool) over host memory.

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
