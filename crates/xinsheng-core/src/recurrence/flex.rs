//! The fused operations on Flex (the CPU, native and WebAssembly): plain Rust over host memory.
//! The step kernels are in [`cpu`], the split of a large batch into one shard of sequences per
//! thread in [`sharded`], the pooling in [`pool`]; this module adapts tensors to them and holds
//! the bookkeeping they share ([`Steps`], [`Dims`]).

use burn::backend::Flex;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::tensor::TensorData;
use std::borrow::Cow;

use super::{RecurrenceBackend, cache_width};
use crate::arch::Arch;

mod cpu;
mod pool;
mod sharded;

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
