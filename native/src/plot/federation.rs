//! A federation's rounds as curves: each closed round's metrics (the clients' `clients_*`
//! averaged by examples, the global model's `val_*` on the validation dataset) at step =
//! rounds done, read from the server that runs it.

use super::curves::RunCurves;
use crate::federate_http::Api;
use kiln::{KilnError, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The per-round series of federation `id` on `server`.
pub fn federation_curves(server: &str, token_file: Option<&Path>, id: &str) -> Result<RunCurves> {
    let api = Api::new(server, token_file)?;
    let view = api.json(api.get(&format!("/v1/federations/{id}"))?)?;
    curves_of(id, &view)
}

/// The series in a federation's view (`history`: one entry per closed round).
fn curves_of(id: &str, view: &Value) -> Result<RunCurves> {
    let history = view["history"]
        .as_array()
        .ok_or_else(|| KilnError::Internal(format!("the server's view of {id} has no history")))?;
    let mut series: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for round in history {
        let step = round["round"].as_u64().unwrap_or(0) + 1;
        let Some(metrics) = round["metrics"].as_object() else {
            continue;
        };
        for (name, value) in metrics {
            if let Some(value) = value.as_f64().filter(|v| v.is_finite()) {
                series.entry(name.clone()).or_default().push((step, value));
            }
        }
    }
    Ok(RunCurves {
        name: id.to_string(),
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_closed_round_is_a_step() {
        let view = json!({"history": [
            {"round": 0, "metrics": {"clients_val_loss": 1.5, "val_accuracy": 0.5}},
            {"round": 1, "metrics": {"clients_val_loss": 0.9, "val_accuracy": null}},
        ]});
        let curves = curves_of("fed-x", &view).unwrap();
        assert_eq!(curves.series["clients_val_loss"], vec![(1, 1.5), (2, 0.9)]);
        assert_eq!(curves.series["val_accuracy"], vec![(1, 0.5)]);
        assert!(curves_of("fed-x", &json!({})).is_err());
    }
}
