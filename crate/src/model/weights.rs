//! Weights to bytes and back, in burn's burnpack format, without any blocking device read.
//!
//! `Module::into_record()` reads every tensor synchronously, which panics on WebGPU. Export
//! here registers all parameters in one `Transaction` and awaits it, then writes the same
//! burnpack layout (`path`, parameter id, dtype, shape) that `ModuleRecord::from_bytes` reads.

use crate::error::{KilnError, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Tensor, Transaction};

/// Walks a module and registers every float parameter in a transaction, keeping its path and id.
#[derive(Default)]
struct ParamCollector {
    path: Vec<String>,
    names: Vec<(String, u64)>,
    transaction: Transaction,
}

impl ModuleVisitor for ParamCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.names.push((self.path.join("."), param.id.val()));
        let transaction = std::mem::take(&mut self.transaction);
        self.transaction = transaction.register(param.val().without_autodiff());
    }
}

/// Serialises a module's parameters to burnpack bytes, reading them asynchronously.
pub async fn export_weights<M: Module>(module: &M) -> Result<Vec<u8>> {
    let mut collector = ParamCollector::default();
    module.visit(&mut collector);
    let data = collector.transaction.execute_async().await.map_err(|e| {
        KilnError::Training(format!("reading the weights from the device failed: {e:?}"))
    })?;
    let tensors = collector
        .names
        .into_iter()
        .zip(data)
        .map(|((path, id), data)| {
            let (bytes, shape, dtype) = data.into_parts();
            burn_pack::Tensor::new(path, dtype, shape, Some(id), bytes)
        })
        .collect();
    let bytes = burn_pack::Writer::new(tensors)
        .into_bytes()
        .map_err(|e| KilnError::Internal(format!("writing the weights failed: {e}")))?;
    Ok(bytes.to_vec())
}

/// Loads burnpack bytes into a module of the same architecture.
pub fn import_weights<M: Module>(module: M, bytes: &[u8]) -> Result<M> {
    // Stored dtypes (f16 from an f16 run, say) are converted to the module's own.
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| {
            KilnError::Model(format!(
                "the weights (a {}-byte burnpack payload after the header) are corrupt or \
                 truncated: burnpack says {e}; export the model again",
                bytes.len()
            ))
        })?
        .cast_to_module_dtype();
    module
        .try_load_record(record)
        .map_err(|e| KilnError::Model(format!("the weights do not fit this architecture: {e}")))
}
