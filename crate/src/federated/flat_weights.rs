//! A model's weights as named f32 vectors — what federated aggregation adds, averages and
//! clips — read from and written back to the burnpack bytes every saved model holds.

use crate::error::{KilnError, Result, cut_short};
use burn::tensor::{DType, TensorData};

/// One named tensor of a model, its values as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedValues {
    /// The parameter's path (`layers.0.Linear.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// burn's parameter id, kept so the written pack loads like the one read.
    pub param_id: Option<u64>,
    /// The values, row-major.
    pub values: Vec<f32>,
}

/// Every float tensor of a model, in the pack's order.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatWeights {
    /// The tensors.
    pub tensors: Vec<NamedValues>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> KilnError {
    KilnError::Model(format!("{what}: not readable weights (burnpack): {e}"))
}

impl FlatWeights {
    /// Reads burnpack bytes (`what` names them in errors); f16 and bf16 values become f32.
    pub fn from_burnpack(what: &str, bytes: &[u8]) -> Result<Self> {
        let reader =
            burn_pack::Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes.to_vec()))
                .map_err(|e| corrupt(what, e))?;
        let tensors = reader.into_tensors().map_err(|e| corrupt(what, e))?;
        let mut read = Vec::with_capacity(tensors.len());
        for tensor in tensors {
            let (name, dtype, shape, param_id, bytes) =
                tensor.into_parts().map_err(|e| corrupt(what, e))?;
            if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
                return Err(KilnError::Model(format!(
                    "{what}: tensor `{}` holds {dtype:?} values; only float weights can be \
                     aggregated",
                    cut_short(&name)
                )));
            }
            let shape = shape.to_vec();
            let data =
                TensorData::from_bytes_vec(bytes.to_vec(), shape.clone(), dtype).convert::<f32>();
            let values = data
                .try_into_vec::<f32>()
                .map_err(|e| corrupt(what, format!("{e:?}")))?;
            read.push(NamedValues {
                name,
                shape,
                param_id,
                values,
            });
        }
        Ok(Self { tensors: read })
    }

    /// Writes the tensors as f32 burnpack bytes.
    pub fn to_burnpack(&self) -> Result<Vec<u8>> {
        let tensors = self
            .tensors
            .iter()
            .map(|t| {
                let bytes: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                burn_pack::Tensor::new(
                    t.name.clone(),
                    DType::F32,
                    t.shape.clone(),
                    t.param_id,
                    burn_pack::Bytes::from_bytes_vec(bytes),
                )
            })
            .collect();
        let bytes = burn_pack::Writer::new(tensors)
            .into_bytes()
            .map_err(|e| KilnError::Internal(format!("writing weights failed: {e}")))?;
        Ok(bytes.to_vec())
    }

    /// The number of values in all.
    pub fn len(&self) -> usize {
        self.tensors.iter().map(|t| t.values.len()).sum()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every value, tensor after tensor.
    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.tensors.iter().flat_map(|t| t.values.iter().copied())
    }

    /// Checks that `other` (named `what` in errors) has exactly these tensors and shapes, and
    /// only finite values.
    pub fn check_same_layout(&self, what: &str, other: &Self) -> Result<()> {
        if self.tensors.len() != other.tensors.len() {
            return Err(KilnError::Model(format!(
                "{what}: {} tensors, but the model has {}",
                other.tensors.len(),
                self.tensors.len()
            )));
        }
        for (mine, theirs) in self.tensors.iter().zip(&other.tensors) {
            if mine.name != theirs.name || mine.shape != theirs.shape {
                return Err(KilnError::Model(format!(
                    "{what}: tensor `{}` {:?} where the model has `{}` {:?}",
                    cut_short(&theirs.name),
                    theirs.shape,
                    cut_short(&mine.name),
                    mine.shape
                )));
            }
        }
        if let Some(t) = other
            .tensors
            .iter()
            .find(|t| t.values.iter().any(|v| !v.is_finite()))
        {
            return Err(KilnError::Model(format!(
                "{what}: tensor `{}` holds NaN or infinite values",
                cut_short(&t.name)
            )));
        }
        Ok(())
    }

    /// The same layout with every value computed by `f` from this one's and `other`'s (which
    /// has the same layout, checked by [`Self::check_same_layout`]).
    pub fn zip_map(&self, other: &Self, f: impl Fn(f32, f32) -> f32) -> Self {
        let tensors = self
            .tensors
            .iter()
            .zip(&other.tensors)
            .map(|(a, b)| NamedValues {
                values: a
                    .values
                    .iter()
                    .zip(&b.values)
                    .map(|(x, y)| f(*x, *y))
                    .collect(),
                ..a.clone()
            })
            .collect();
        Self { tensors }
    }

    /// The same layout with every value `f` of this one's.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Self {
        let tensors = self
            .tensors
            .iter()
            .map(|a| NamedValues {
                values: a.values.iter().map(|x| f(*x)).collect(),
                ..a.clone()
            })
            .collect();
        Self { tensors }
    }

    /// The Euclidean norm of all values.
    pub fn norm(&self) -> f64 {
        self.values()
            .map(|v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt()
    }

    /// Every value replaced by the one at the same place in `values` (as many as [`Self::len`]).
    pub fn with_values(&self, values: &[f32]) -> Self {
        let mut at = 0;
        let tensors = self
            .tensors
            .iter()
            .map(|t| {
                let next = at + t.values.len();
                let part = values.get(at..next).unwrap_or_default().to_vec();
                at = next;
                NamedValues {
                    values: part,
                    ..t.clone()
                }
            })
            .collect();
        Self { tensors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{LayerSpec, LinearSpec};
    use crate::model::{Network, export_weights};

    #[test]
    fn a_network_s_weights_go_through_flat_values_and_back() {
        let device = crate::backend::cpu_device();
        let layers: Vec<LayerSpec> = vec![
            LinearSpec::new(Some(3)).into(),
            LinearSpec::new(None).into(),
        ];
        let network = Network::build(&layers, &[4], None, 2, &device).expect("network");
        let bytes = futures::executor::block_on(export_weights(&network)).expect("weights");
        let flat = FlatWeights::from_burnpack("the model", &bytes).expect("readable");
        assert_eq!(flat.len(), 4 * 3 + 3 + 3 * 2 + 2);
        let doubled = flat.map(|v| v * 2.0);
        let loaded = crate::model::import_weights(network, &doubled.to_burnpack().expect("pack"))
            .expect("the written pack loads into the same architecture");
        let again = futures::executor::block_on(export_weights(&loaded)).expect("weights");
        let read = FlatWeights::from_burnpack("again", &again).expect("readable");
        assert_eq!(read, doubled);
        assert!(FlatWeights::from_burnpack("junk", b"not a pack").is_err());
    }
}
