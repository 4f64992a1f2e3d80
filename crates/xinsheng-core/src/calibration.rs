//! Calibration: temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural
//! Networks") and expected calibration error.
//!
//! A bundle stores one temperature `T`; every path that turns logits into probabilities (the
//! CLI, the browser, the widget) divides the logits by `T` before the softmax, so a model that
//! says 0.9 is right about nine times in ten. `T` is fitted on validation data after training.

use serde::{Deserialize, Serialize};

use crate::scores::{argmax, softmax_at};

/// Mean negative log-likelihood of the `truth` classes under `softmax(logits / temperature)`.
pub fn nll(logits: &[Vec<f32>], truth: &[usize], temperature: f64) -> f64 {
    let total: f64 = logits.iter().zip(truth).map(|(row, &t)| -softmax_at(row, temperature)[t].max(1e-300).ln()).sum();
    total / logits.len().max(1) as f64
}

/// The range [`fit_temperature`] searches.
const SEARCHED: (f64, f64) = (0.05, 20.0);

/// The temperature in [0.05, 20] that minimises the NLL of `truth` (one class index per row of
/// `logits`): golden-section search on log T (the NLL is unimodal in it). `None` when the data
/// cannot pin T down: no rows, every example right (the NLL keeps falling as T → 0) or every
/// one wrong (it keeps falling as T → ∞), or an optimum at the edge of the range.
pub fn fit_temperature(logits: &[Vec<f32>], truth: &[usize]) -> Option<f64> {
    let right = logits.iter().zip(truth).filter(|(row, t)| argmax(row) == **t).count();
    if right == 0 || right == logits.len() {
        return None;
    }
    let f = |log_t: f64| nll(logits, truth, log_t.exp());
    let (mut lo, mut hi) = (SEARCHED.0.ln(), SEARCHED.1.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - ratio * (hi - lo);
    let mut b = lo + ratio * (hi - lo);
    let (mut fa, mut fb) = (f(a), f(b));
    for _ in 0..60 {
        if fa < fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - ratio * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + ratio * (hi - lo);
            fb = f(b);
        }
    }
    let t = ((lo + hi) / 2.0).exp();
    (SEARCHED.0 * 1.02 < t && t < SEARCHED.1 * 0.995).then_some(t)
}

/// Expected calibration error of the top label with `bins` equal-width confidence bins:
/// Σ_b (|b| / n) · |accuracy(b) − mean confidence(b)|. `probs` holds one distribution per row.
pub fn expected_calibration_error(probs: &[Vec<f32>], truth: &[usize], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut count = vec![0usize; bins];
    let mut correct = vec![0usize; bins];
    let mut confidence = vec![0f64; bins];
    for (row, &t) in probs.iter().zip(truth) {
        let best = argmax(row);
        let p = row[best];
        let bin = ((p as f64 * bins as f64) as usize).min(bins - 1);
        count[bin] += 1;
        correct[bin] += usize::from(best == t);
        confidence[bin] += p as f64;
    }
    let n = probs.len().max(1) as f64;
    (0..bins).filter(|&b| count[b] > 0).map(|b| (correct[b] as f64 - confidence[b]).abs() / n).sum()
}

/// The number of bins ECE is reported with throughout the project.
pub const ECE_BINS: usize = 15;

/// What calibrating a model on labelled data did: the fitted temperature and the expected
/// calibration error ([`ECE_BINS`] bins) before (at the previous temperature) and after.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub temperature: f64,
    pub ece_before: f64,
    pub ece_after: f64,
}

/// Fits a temperature to `logits` (one row per example, raw) against `truth` (one class index
/// per row) with [`fit_temperature`], keeping `previous` where the data cannot determine one
/// (every example right, for one), and reports ECE at `previous` and at the result.
pub fn calibrate_logits(logits: &[Vec<f32>], truth: &[usize], previous: f64) -> Calibration {
    let probs_at = |t: f64| -> Vec<Vec<f32>> {
        logits.iter().map(|row| softmax_at(row, t).into_iter().map(|p| p as f32).collect()).collect()
    };
    let ece_before = expected_calibration_error(&probs_at(previous), truth, ECE_BINS);
    let temperature = fit_temperature(logits, truth).unwrap_or(previous);
    let ece_after = expected_calibration_error(&probs_at(temperature), truth, ECE_BINS);
    Calibration { temperature, ece_before, ece_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_undoes_overconfident_logits() {
        // Logits ±4 (p ≈ 0.9997) on data that is right 80 % of the time: the fitted
        // temperature brings the confidence to 0.8, i.e. 8 / T = ln 4.
        let logits: Vec<Vec<f32>> = (0..100).map(|_| vec![4.0, -4.0]).collect();
        let truth: Vec<usize> = (0..100).map(|i| usize::from(i % 5 == 0)).collect();
        let t = fit_temperature(&logits, &truth).expect("an interior optimum");
        assert!((t - 8.0 / 4f64.ln()).abs() < 1e-3, "T = {t}");
        assert!(nll(&logits, &truth, t) < nll(&logits, &truth, 1.0));
        let p = softmax_at(&logits[0], t);
        assert!((p[0] - 0.8).abs() < 1e-4, "{p:?}");
    }

    #[test]
    fn data_that_cannot_pin_the_temperature_down_gives_none() {
        // Every example right: the NLL keeps falling as T → 0 (and flattens out in floating
        // point before the range's edge, so the edge alone would not tell); every one wrong.
        let logits: Vec<Vec<f32>> = (0..10).map(|_| vec![1.0, -1.0]).collect();
        assert_eq!(fit_temperature(&logits, &[0; 10]), None);
        assert_eq!(fit_temperature(&logits, &[1; 10]), None);
        assert_eq!(fit_temperature(&[], &[]), None);
    }

    #[test]
    fn ece_is_the_gap_between_confidence_and_accuracy() {
        // All at confidence 0.9, right half the time: ECE 0.4. Perfectly calibrated: 0.
        let probs = vec![vec![0.9f32, 0.1]; 10];
        let half: Vec<usize> = (0..10).map(|i| i % 2).collect();
        assert!((expected_calibration_error(&probs, &half, 15) - 0.4).abs() < 1e-6);
        let nine_in_ten: Vec<usize> = (0..10).map(|i| usize::from(i == 0)).collect();
        assert!(expected_calibration_error(&probs, &nine_in_ten, 15) < 1e-6);
    }
}
