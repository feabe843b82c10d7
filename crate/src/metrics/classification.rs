//! Classification metrics from predicted and true classes.

/// Per-class counts, from which every classification metric is derived.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionMatrix {
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Counts (true, predicted) pairs over `num_classes` classes.
    pub fn new(truth: &[u32], predicted: &[u32], num_classes: usize) -> Self {
        let mut counts = vec![vec![0u64; num_classes]; num_classes];
        for (t, p) in truth.iter().zip(predicted) {
            if let Some(row) = counts.get_mut(*t as usize)
                && let Some(cell) = row.get_mut(*p as usize)
            {
                *cell += 1;
            }
        }
        Self { counts }
    }

    fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Fraction of samples on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        ratio(correct, self.total())
    }

    fn support(&self, class: usize) -> u64 {
        self.counts[class].iter().sum()
    }

    fn predicted(&self, class: usize) -> u64 {
        self.counts.iter().map(|row| row[class]).sum()
    }

    /// Precision, recall and F1 of one class (0 where undefined).
    pub fn class_scores(&self, class: usize) -> (f64, f64, f64) {
        let tp = self.counts[class][class];
        let precision = ratio(tp, self.predicted(class));
        let recall = ratio(tp, self.support(class));
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        (precision, recall, f1)
    }

    /// Macro (unweighted) and support-weighted averages of (precision, recall, f1), over the
    /// classes present in the truth.
    pub fn averages(&self) -> ([f64; 3], [f64; 3]) {
        let total = self.total() as f64;
        let mut macro_avg = [0.0; 3];
        let mut weighted = [0.0; 3];
        let mut present = 0usize;
        for class in 0..self.counts.len() {
            let support = self.support(class);
            if support == 0 {
                continue;
            }
            present += 1;
            let (p, r, f) = self.class_scores(class);
            for (slot, v) in macro_avg.iter_mut().zip([p, r, f]) {
                *slot += v;
            }
            for (slot, v) in weighted.iter_mut().zip([p, r, f]) {
                *slot += v * support as f64 / total.max(1.0);
            }
        }
        for v in &mut macro_avg {
            *v /= present.max(1) as f64;
        }
        (macro_avg, weighted)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_computation() {
        // truth: 0 0 1 1, predicted: 0 1 1 1
        let cm = ConfusionMatrix::new(&[0, 0, 1, 1], &[0, 1, 1, 1], 2);
        assert!((cm.accuracy() - 0.75).abs() < 1e-12);
        let (p1, r1, f1) = cm.class_scores(1);
        assert!((p1 - 2.0 / 3.0).abs() < 1e-12 && (r1 - 1.0).abs() < 1e-12);
        assert!((f1 - 0.8).abs() < 1e-12);
        let (macro_avg, weighted) = cm.averages();
        assert!((macro_avg[0] - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((weighted[1] - 0.75).abs() < 1e-12);
    }
}
