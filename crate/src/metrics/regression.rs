//! Regression metrics.

/// (mse, mae, r2) of predictions against targets.
pub fn regression_scores(truth: &[f32], predicted: &[f32]) -> (f64, f64, f64) {
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().map(|&t| f64::from(t)).sum::<f64>() / n;
    let (mut se, mut ae, mut tot) = (0.0, 0.0, 0.0);
    for (t, p) in truth.iter().zip(predicted) {
        let d = f64::from(*t) - f64::from(*p);
        se += d * d;
        ae += d.abs();
        tot += (f64::from(*t) - mean).powi(2);
    }
    let r2 = if tot > 0.0 { 1.0 - se / tot } else { 0.0 };
    (se / n, ae / n, r2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_prediction_has_r2_one() {
        let (mse, mae, r2) = regression_scores(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert_eq!((mse, mae), (0.0, 0.0));
        assert!((r2 - 1.0).abs() < 1e-12);
        let (mse, mae, _) = regression_scores(&[0.0, 0.0], &[1.0, -3.0]);
        assert!((mse - 5.0).abs() < 1e-12 && (mae - 2.0).abs() < 1e-12);
    }
}
