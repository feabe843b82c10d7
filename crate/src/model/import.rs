//! Starting a config network from weights trained elsewhere: a PyTorch state dict saved with
//! `safetensors`, its keys mapped to Kiln's layers, linear weights transposed as burn stores them.

use super::network::Network;
use crate::error::{KilnError, Result, cut_short};
use crate::layers::{Layer, TorchParameter};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;

/// One tensor of the file, bound for one Kiln parameter.
struct Incoming {
    /// The file's key, for messages.
    key: String,
    data: TensorData,
}

/// Loads the tensors of the safetensors file `bytes` into `network`. `map` renames key prefixes
/// to layer indices (`{fc1: "0"}`). Every key of the file must land on a parameter of the same
/// shape; layers the file does not cover keep their initialisation. Errors name the keys.
pub fn import_safetensors(
    network: Network,
    bytes: &[u8],
    map: &BTreeMap<String, String>,
) -> Result<Network> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| {
        KilnError::Model(format!(
            "model.init_from: not a readable safetensors file ({} bytes): {e}",
            bytes.len()
        ))
    })?;
    let mut incoming: BTreeMap<String, Incoming> = BTreeMap::new();
    let mut unmatched = Vec::new();
    let mut names: Vec<String> = file.names().into_iter().map(str::to_string).collect();
    names.sort();
    for key in names {
        let view = file.tensor(&key).map_err(|e| {
            let key = cut_short(&key);
            KilnError::Model(format!("model.init_from: key `{key}`: {e}"))
        })?;
        let mapped = rename(&key, map);
        match target(&network, &mapped) {
            Target::Skip => {}
            Target::None(why) => unmatched.push(format!("`{}` ({why})", cut_short(&key))),
            Target::Param { path, transpose } => {
                let data = tensor_data(&key, view.dtype(), view.shape(), view.data())?;
                let data = if transpose {
                    transposed(&key, data)?
                } else {
                    data
                };
                incoming.insert(path, Incoming { key, data });
            }
        }
    }
    if !unmatched.is_empty() {
        return Err(KilnError::Model(format!(
            "model.init_from: {} key(s) of the file match no layer: {}. Map their prefixes to \
             layer indices with model.init_from.map (e.g. {{fc1: \"0\"}}); this network's \
             parameters are {}",
            unmatched.len(),
            listed(&unmatched),
            parameter_names(&network).join(", ")
        )));
    }
    let mut loader = Loader {
        path: Vec::new(),
        incoming,
        errors: Vec::new(),
    };
    let network = network.map(&mut loader);
    if let Some(error) = loader.errors.first() {
        return Err(KilnError::Model(format!("model.init_from: {error}")));
    }
    Ok(network)
}

/// `fc1.weight` with `{fc1: "0"}` → `0.weight` (the longest matching prefix wins).
fn rename(key: &str, map: &BTreeMap<String, String>) -> String {
    map.iter()
        .filter(|(from, _)| key == from.as_str() || key.starts_with(&format!("{from}.")))
        .max_by_key(|(from, _)| from.len())
        .map_or_else(
            || key.to_string(),
            |(from, to)| format!("{to}{}", &key[from.len()..]),
        )
}

/// Where a mapped key `<index>.<param>` goes.
enum Target {
    /// A parameter path of the network, and whether PyTorch's layout is transposed.
    Param { path: String, transpose: bool },
    /// PyTorch bookkeeping with no Kiln counterpart (`num_batches_tracked`).
    Skip,
    /// Why it lands nowhere.
    None(String),
}

fn target(network: &Network, mapped: &str) -> Target {
    let Some((index, param)) = mapped.split_once('.') else {
        return Target::None("not `<layer index>.<parameter>`".into());
    };
    let Ok(index) = index.parse::<usize>() else {
        return Target::None(format!("`{index}` is not a layer index"));
    };
    let Some(layer) = network.layers.get(index) else {
        return Target::None(format!("the network has {} layers", network.layers.len()));
    };
    let known = layer
        .built()
        .torch_parameters()
        .iter()
        .find(|known| known.torch == param);
    match known {
        Some(TorchParameter {
            burn: Some(name),
            transpose,
            ..
        }) => Target::Param {
            path: format!("layers.{index}.{}.{name}", layer.variant_name()),
            transpose: *transpose,
        },
        Some(_) => Target::Skip,
        None => Target::None(format!(
            "layer {index} is {} and takes no `{param}` from PyTorch",
            layer_name(layer)
        )),
    }
}

fn layer_name(layer: &Layer) -> String {
    layer.variant_name().to_lowercase()
}

/// What each layer takes from PyTorch, for messages: `0.weight/0.bias (linear)`.
fn parameter_names(network: &Network) -> Vec<String> {
    network
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, layer)| {
            let names: Vec<String> = layer
                .built()
                .torch_parameters()
                .iter()
                .filter(|known| known.burn.is_some())
                .map(|known| format!("{i}.{}", known.torch))
                .collect();
            (!names.is_empty()).then(|| format!("{} ({})", names.join("/"), layer_name(layer)))
        })
        .collect()
}

fn tensor_data(key: &str, dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<TensorData> {
    let dtype = match dtype {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        other => {
            return Err(KilnError::Model(format!(
                "model.init_from: key `{}` holds {other:?} values; weights must be floats \
                 (F32, F16, BF16 or F64)",
                cut_short(key)
            )));
        }
    };
    Ok(TensorData::from_bytes_vec(bytes.to_vec(), shape.to_vec(), dtype).convert::<f32>())
}

/// The first ten of `items`, joined, and how many more there are.
fn listed(items: &[String]) -> String {
    let shown = items
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match items.len().saturating_sub(10) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// PyTorch's `[out, in]` linear weight as burn's `[in, out]`.
fn transposed(key: &str, data: TensorData) -> Result<TensorData> {
    let [rows, cols] = data.shape().as_slice() else {
        return Err(KilnError::Model(format!(
            "model.init_from: key `{}` has shape {:?}, but a linear weight is 2-D [out, in]",
            cut_short(key),
            data.shape()
        )));
    };
    let (rows, cols) = (*rows, *cols);
    let values = data.try_to_vec::<f32>().map_err(|e| {
        let key = cut_short(key);
        KilnError::Model(format!("model.init_from: key `{key}`: {e:?}"))
    })?;
    let mut out = vec![0.0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    Ok(TensorData::new(out, [cols, rows]))
}

/// Replaces the parameters the file holds, checking shapes.
struct Loader {
    path: Vec<String>,
    incoming: BTreeMap<String, Incoming>,
    errors: Vec<String>,
}

impl ModuleMapper for Loader {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(incoming) = self.incoming.remove(&self.path.join(".")) else {
            return param;
        };
        let errors = &mut self.errors;
        param.map(|tensor| {
            let expected = tensor.dims().to_vec();
            if incoming.data.shape().as_slice() != expected.as_slice() {
                errors.push(format!(
                    "key `{}` has shape {:?}, but the layer's parameter is {:?} (linear weights \
                     compared as burn's [in, out], PyTorch's transposed)",
                    cut_short(&incoming.key),
                    incoming.data.shape().as_slice(),
                    expected
                ));
                return tensor;
            }
            let trainable = tensor.is_require_grad();
            let loaded = Tensor::<D>::from_data(incoming.data, &tensor.device())
                .cast(tensor.dtype())
                .detach();
            if trainable {
                loaded.require_grad()
            } else {
                loaded
            }
        })
    }
}
