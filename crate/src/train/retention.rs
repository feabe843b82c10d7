//! Which checkpoints to keep: the `save_top_k` best by the main metric, and always the latest.

use crate::config::Direction;
use serde::{Deserialize, Serialize};

/// One stored checkpoint, as a checkpoint index lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedCheckpoint {
    /// Its name (a directory or object prefix) within the run.
    pub dir: String,
    /// Epochs completed when it was written.
    pub epoch: usize,
    /// The main metric then, if it was measured.
    pub score: Option<f64>,
    /// SHA-256 (hex) of each of its files by name, checked before it is resumed from
    /// (absent in indexes written before checksums were kept).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checksums: std::collections::BTreeMap<String, String>,
}

/// Splits `index` into the checkpoints to keep and those to delete: the `top_k` best scored
/// ones (by `direction`) and the latest.
pub fn retain_top_k(
    index: Vec<RankedCheckpoint>,
    top_k: usize,
    direction: Direction,
) -> (Vec<RankedCheckpoint>, Vec<RankedCheckpoint>) {
    let latest = index.iter().map(|c| c.epoch).max().unwrap_or(0);
    let mut scored: Vec<(f64, &str)> = index
        .iter()
        .filter_map(|c| Some((c.score?, c.dir.as_str())))
        .collect();
    scored.sort_by(|a, b| direction.best_first(a.0, b.0));
    let best: Vec<String> = scored
        .iter()
        .take(top_k)
        .map(|(_, dir)| dir.to_string())
        .collect();
    index
        .into_iter()
        .partition(|c| c.epoch == latest || best.contains(&c.dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(scores: &[Option<f64>]) -> Vec<RankedCheckpoint> {
        scores
            .iter()
            .enumerate()
            .map(|(i, score)| RankedCheckpoint {
                checksums: Default::default(),
                dir: format!("epoch-{}", i + 1),
                epoch: i + 1,
                score: *score,
            })
            .collect()
    }

    fn dirs(kept: &[RankedCheckpoint]) -> Vec<&str> {
        kept.iter().map(|c| c.dir.as_str()).collect()
    }

    #[test]
    fn keeps_the_best_k_and_the_latest() {
        let all = index(&[Some(0.9), Some(0.3), Some(0.5), Some(0.8)]);
        let (kept, dropped) = retain_top_k(all.clone(), 2, Direction::Min);
        assert_eq!(dirs(&kept), ["epoch-2", "epoch-3", "epoch-4"]);
        assert_eq!(dirs(&dropped), ["epoch-1"]);
        let (kept, _) = retain_top_k(all, 1, Direction::Max);
        assert_eq!(dirs(&kept), ["epoch-1", "epoch-4"]);
    }

    #[test]
    fn unscored_checkpoints_only_survive_as_the_latest() {
        let (kept, dropped) = retain_top_k(index(&[None, Some(1.0), None]), 1, Direction::Min);
        assert_eq!(dirs(&kept), ["epoch-2", "epoch-3"]);
        assert_eq!(dirs(&dropped), ["epoch-1"]);
    }
}
