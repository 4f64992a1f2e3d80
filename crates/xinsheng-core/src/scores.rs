//! Scores as plain numbers, with no tensor library: the predicted class of a row of logits or
//! probabilities ([`argmax`], one tie rule for every path) and the softmax at a temperature
//! ([`softmax_at`]). Metrics and calibration are built on these; the model's own tensors use
//! the same rules (`Classifier::probabilities_tensor` divides by the same temperature).

/// The index of the largest value of `row` (the predicted class of a row of probabilities or
/// logits); on an exact tie the **first** of the largest, as NumPy's `argmax` picks (so
/// `xinsheng.ray_predict`, which takes labels from `predict_proba` with NumPy, and every other
/// path agree); 0 for an empty row.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if v.total_cmp(&row[best]).is_gt() {
            best = i;
        }
    }
    best
}

/// Softmax of `logits / temperature` (temperature > 0), computed stably in f64: one
/// probability per logit, summing to 1.
pub fn softmax_at(logits: &[f32], temperature: f64) -> Vec<f64> {
    let scaled: Vec<f64> = logits.iter().map(|&z| z as f64 / temperature).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scaled.iter().map(|z| (z - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_tied_maxima_as_numpy_does() {
        assert_eq!(argmax(&[0.25, 0.5, 0.25]), 1);
        assert_eq!(argmax(&[0.5, 0.5]), 0, "an exact tie between two labels: the first");
        assert_eq!(argmax(&[0.2, 0.4, 0.4]), 1, "a tie after a smaller value: the first of the tie");
        assert_eq!(argmax(&[-1.0, -0.5, -0.5]), 1, "logits too");
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn softmax_at_a_temperature_divides_the_logits() {
        let p = softmax_at(&[2.0, 0.0], 2.0);
        assert!((p[0] - 1.0 / (1.0 + (-1f64).exp())).abs() < 1e-12, "{p:?}");
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Large logits do not overflow.
        assert_eq!(softmax_at(&[1e30, 0.0], 1.0), vec![1.0, 0.0]);
    }
}
