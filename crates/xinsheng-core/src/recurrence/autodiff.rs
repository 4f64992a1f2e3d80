//! The fused operations under autodiff: one graph node per call, whose backward is the inner
//! backend's hand-written pass ([`RecurrenceBackend::recurrence_backward`] and its companions).

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use super::RecurrenceBackend;
use crate::arch::Arch;

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
