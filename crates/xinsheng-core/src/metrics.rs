//! Accuracy, per-class precision/recall/F1, macro-F1 and the confusion matrix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub labels: Vec<String>,
    /// `matrix[truth][predicted]`, rows and columns in `labels` order.
    pub matrix: Vec<Vec<usize>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: BTreeMap<String, ClassMetrics>,
    pub confusion: Confusion,
    /// Expected calibration error of the top label (15 equal-width bins), when the
    /// probabilities were at hand ([`crate::calibration::expected_calibration_error`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    /// When the data uses only some of the model's labels (binary reviews scored by a model that
    /// also knows `neutral`): the same metrics with the decision taken among the data's labels
    /// alone, see [`Metrics::over_data_labels`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_labels: Option<Box<DataLabels>>,
}

/// Metrics of a model on data that uses fewer labels than the model knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataLabels {
    /// The labels the data uses, in the model's order.
    pub labels: Vec<String>,
    /// Accuracy, macro-F1, per-class figures and ECE with each row's probabilities renormalised
    /// over `labels` (for negative/positive data: P(positive) against P(negative)).
    pub metrics: Metrics,
    /// Share of rows (0–1) whose most probable label over all of the model's labels is one the
    /// data does not use (for binary data: the polar reviews the model calls neutral).
    pub predicted_outside: f64,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

impl Metrics {
    /// `truth` and `predicted` are class indices into `labels`.
    pub fn compute(labels: &[String], truth: &[usize], predicted: &[usize]) -> Metrics {
        assert_eq!(truth.len(), predicted.len(), "one prediction per example");
        let n = labels.len();
        let mut matrix = vec![vec![0usize; n]; n];
        for (&t, &p) in truth.iter().zip(predicted) {
            matrix[t][p] += 1;
        }
        let correct: usize = (0..n).map(|i| matrix[i][i]).sum();
        let mut per_class = BTreeMap::new();
        let mut f1_sum = 0.0;
        for (i, label) in labels.iter().enumerate() {
            let support: usize = matrix[i].iter().sum();
            let predicted_as: usize = (0..n).map(|t| matrix[t][i]).sum();
            let precision = ratio(matrix[i][i], predicted_as);
            let recall = ratio(matrix[i][i], support);
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            f1_sum += f1;
            per_class.insert(label.clone(), ClassMetrics { precision, recall, f1, support });
        }
        Metrics {
            accuracy: ratio(correct, truth.len()),
            macro_f1: if n == 0 { 0.0 } else { f1_sum / n as f64 },
            per_class,
            confusion: Confusion { labels: labels.to_vec(), matrix },
            ece: None,
            data_labels: None,
        }
    }

    /// [`Metrics::from_probabilities`], plus [`Metrics::data_labels`] when `truth` uses at
    /// least two but not all of `labels`: the figures a three-label model is held to on binary
    /// reviews (P(positive) against P(negative), and the share it calls neutral).
    pub fn over_data_labels(labels: &[String], truth: &[usize], probs: &[Vec<f32>]) -> Metrics {
        let mut metrics = Metrics::from_probabilities(labels, truth, probs);
        let mut used: Vec<usize> = truth.to_vec();
        used.sort_unstable();
        used.dedup();
        if used.len() < 2 || used.len() == labels.len() {
            return metrics;
        }
        let position = |class: usize| used.iter().position(|&u| u == class).expect("truth uses the class");
        let sub_truth: Vec<usize> = truth.iter().map(|&t| position(t)).collect();
        let sub_probs: Vec<Vec<f32>> = probs
            .iter()
            .map(|row| {
                let kept: Vec<f32> = used.iter().map(|&u| row[u]).collect();
                let sum: f32 = kept.iter().sum();
                if sum > 0.0 {
                    kept.iter().map(|p| p / sum).collect()
                } else {
                    vec![1.0 / used.len() as f32; used.len()]
                }
            })
            .collect();
        let sub_labels: Vec<String> = used.iter().map(|&u| labels[u].clone()).collect();
        let outside = probs.iter().filter(|row| !used.contains(&crate::scores::argmax(row))).count();
        metrics.data_labels = Some(Box::new(DataLabels {
            metrics: Metrics::from_probabilities(&sub_labels, &sub_truth, &sub_probs),
            labels: sub_labels,
            predicted_outside: ratio(outside, truth.len()),
        }));
        metrics
    }

    /// The metrics of the most probable class of each row of `probs`, with the expected
    /// calibration error of those probabilities (15 bins).
    pub fn from_probabilities(labels: &[String], truth: &[usize], probs: &[Vec<f32>]) -> Metrics {
        let predicted: Vec<usize> = probs.iter().map(|row| crate::scores::argmax(row)).collect();
        let ece = crate::calibration::expected_calibration_error(probs, truth, crate::calibration::ECE_BINS);
        Metrics { ece: Some(ece), ..Metrics::compute(labels, truth, &predicted) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        let labels = vec!["neg".to_string(), "pos".to_string()];
        // truth: neg neg neg pos pos; predicted: neg neg pos pos neg
        let m = Metrics::compute(&labels, &[0, 0, 0, 1, 1], &[0, 0, 1, 1, 0]);
        assert_eq!(m.confusion.matrix, vec![vec![2, 1], vec![1, 1]]);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        let neg = &m.per_class["neg"];
        assert!((neg.precision - 2.0 / 3.0).abs() < 1e-12 && (neg.recall - 2.0 / 3.0).abs() < 1e-12);
        let pos = &m.per_class["pos"];
        assert!((pos.precision - 0.5).abs() < 1e-12 && (pos.f1 - 0.5).abs() < 1e-12);
        assert!((m.macro_f1 - (2.0 / 3.0 + 0.5) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn binary_truth_on_three_labels_is_scored_among_the_two() {
        let labels: Vec<String> = ["negative", "neutral", "positive"].map(String::from).to_vec();
        // Row 2 is called neutral but leans positive: wrong over three labels, right over two.
        let probs = vec![vec![0.8, 0.1, 0.1], vec![0.1, 0.6, 0.3], vec![0.3, 0.6, 0.1], vec![0.2, 0.1, 0.7]];
        let m = Metrics::over_data_labels(&labels, &[0, 2, 2, 2], &probs);
        assert!((m.accuracy - 0.5).abs() < 1e-12);
        let d = m.data_labels.expect("the data uses two of three labels");
        assert_eq!(d.labels, ["negative", "positive"]);
        assert!((d.metrics.accuracy - 0.75).abs() < 1e-12);
        assert!((d.predicted_outside - 0.5).abs() < 1e-12);
        assert_eq!(d.metrics.confusion.matrix, vec![vec![1, 0], vec![1, 2]]);
        // Data that uses every label gets no second set of figures.
        assert!(Metrics::over_data_labels(&labels, &[0, 1, 2, 2], &probs).data_labels.is_none());
    }

    #[test]
    fn a_class_never_predicted_has_zero_precision_not_nan() {
        let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let m = Metrics::compute(&labels, &[0, 1, 2], &[0, 0, 0]);
        assert_eq!(m.per_class["b"].precision, 0.0);
        assert!(m.macro_f1.is_finite());
    }
}
