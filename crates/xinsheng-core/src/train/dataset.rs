//! Training data as the model reads it: texts as ids with their classes and the teacher's
//! probabilities, and the batches an epoch visits.

use serde::Serialize;

use crate::data::{Example, TeacherRow};
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// Texts already turned into ids, with class indices and, for distillation, the teacher's
/// probabilities.
#[derive(Clone, Debug, Default)]
pub struct Encoded {
    pub ids: Vec<Vec<usize>>,
    /// The gold class of each example; for an example without one (see `gold`), the
    /// teacher's most probable class, used only for the running accuracy.
    pub labels: Vec<usize>,
    /// Per example, the teacher's probability of each class (in label order), or an empty
    /// list where the teacher gave none. Empty altogether without distillation.
    pub teacher: Vec<Vec<f32>>,
    /// Per example, whether `labels` holds a gold label. Empty means all do.
    pub gold: Vec<bool>,
}

impl Encoded {
    /// Encodes `examples` with `encode`; every label must be in `labels`.
    pub fn new(
        encode: &dyn Fn(&str) -> Vec<usize>,
        labels: &[String],
        examples: &[Example],
        source: &str,
    ) -> Result<Encoded> {
        Encoded::with_ids(examples.iter().map(|e| encode(&e.text)).collect(), labels, examples, source)
    }

    /// Pairs `ids` (one list per example, already encoded) with the examples' classes.
    pub fn with_ids(ids: Vec<Vec<usize>>, labels: &[String], examples: &[Example], source: &str) -> Result<Encoded> {
        let classes = examples
            .iter()
            .map(|e| {
                labels.iter().position(|l| *l == e.label).ok_or_else(|| {
                    Error::data(
                        source,
                        None,
                        format!("label '{}' is not one of the model's labels {:?}", e.label, labels),
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        Ok(Encoded { ids, labels: classes, ..Encoded::default() })
    }

    /// Attaches teacher probabilities, one list per example (empty where there is none).
    pub fn with_teacher(mut self, teacher: Vec<Vec<f32>>) -> Encoded {
        assert_eq!(teacher.len(), self.len(), "one teacher entry per example");
        self.teacher = teacher;
        self
    }

    /// Appends examples known only through the teacher (no gold label), such as augmented
    /// transfer texts: `probs` in label order.
    pub fn push_teacher_only(&mut self, ids: Vec<usize>, probs: Vec<f32>) {
        let n = self.len();
        if self.teacher.is_empty() {
            self.teacher = vec![Vec::new(); n];
        }
        if self.gold.is_empty() {
            self.gold = vec![true; n];
        }
        self.ids.push(ids);
        self.labels.push(crate::scores::argmax(&probs));
        self.teacher.push(probs);
        self.gold.push(false);
    }

    pub(super) fn is_gold(&self, i: usize) -> bool {
        self.gold.get(i).copied().unwrap_or(true)
    }

    pub(super) fn teacher_of(&self, i: usize) -> Option<&[f32]> {
        self.teacher.get(i).filter(|p| !p.is_empty()).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// What [`attach_teacher`] did with a teacher's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TeacherMatch {
    /// Training examples that got the teacher's probabilities.
    pub matched: usize,
    /// Training examples the teacher did not score (trained on cross-entropy alone).
    pub unmatched: usize,
    /// Teacher rows added as examples without a gold label (transfer texts).
    pub transfer: usize,
    /// Teacher rows skipped because their text is a validation text.
    pub held_out: usize,
    /// Teacher rows skipped because an earlier row had the same text.
    pub duplicates: usize,
}

/// Adds a teacher's probabilities to `train` (encoded from `examples`, in order): a row whose
/// text is a training text gives that example its probabilities; any other row becomes an
/// example with no gold label (a transfer text), except a text of `held_out` (validation
/// data), which is skipped so that validation stays unseen. Texts are matched exactly.
pub fn attach_teacher(
    mut train: Encoded,
    examples: &[Example],
    rows: &[TeacherRow],
    held_out: &[Example],
    encode: &dyn Fn(&str) -> Vec<usize>,
) -> (Encoded, TeacherMatch) {
    use std::collections::{HashMap, HashSet};
    let mut by_text: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in examples.iter().enumerate() {
        by_text.entry(e.text.as_str()).or_default().push(i);
    }
    let held_out: HashSet<&str> = held_out.iter().map(|e| e.text.as_str()).collect();
    let mut teacher = vec![Vec::new(); train.len()];
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stats = TeacherMatch::default();
    let mut transfer = Vec::new();
    for row in rows {
        if !seen.insert(row.text.as_str()) {
            stats.duplicates += 1;
        } else if let Some(indices) = by_text.get(row.text.as_str()) {
            for &i in indices {
                teacher[i] = row.probs.clone();
            }
        } else if held_out.contains(row.text.as_str()) {
            stats.held_out += 1;
        } else {
            transfer.push(row);
        }
    }
    stats.matched = teacher.iter().filter(|p| !p.is_empty()).count();
    stats.unmatched = train.len() - stats.matched;
    stats.transfer = transfer.len();
    train = train.with_teacher(teacher);
    for row in transfer {
        train.push_teacher_only(encode(&row.text), row.probs.clone());
    }
    (train, stats)
}

/// Batches of example indices: shuffled, then grouped by similar length so little compute goes
/// into padding, then the batch order shuffled again.
pub fn batches(data: &Encoded, batch_size: usize, rng: &mut SplitMix64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..data.len()).collect();
    rng.shuffle(&mut order);
    let pool = batch_size.max(1) * 32;
    for chunk in order.chunks_mut(pool) {
        chunk.sort_by_key(|&i| data.ids[i].len());
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect();
    rng.shuffle(&mut batches);
    batches
}
