//! The model store: a byte-level key-value trait with memory and directory implementations.
//! The browser (IndexedDB) and Node implement the same trait at the edges.

mod dir;
mod memory;
mod model_store;

pub use crate::model::{MAX_MODEL_ID_LEN, ModelId};
pub use dir::{DirStore, write_atomic};
pub use memory::MemoryStore;
pub use model_store::{ModelStore, import_into, list_models, load_model, save_model, valid_ids};
