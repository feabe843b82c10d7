//! Federated training's target-agnostic parts: a model's weights as flat values, the rules
//! that turn a round's client models into the next global model, the first global model, and
//! a client's local round.

mod aggregation;
mod flat_weights;
mod global_model;
mod local_round;
pub mod secure;

pub use aggregation::{Aggregation, AggregationMethod, ClientModel, ServerMoments, aggregate};
pub use flat_weights::{FlatWeights, NamedValues};
pub use global_model::initial_model;
pub use local_round::{LocalUpdate, local_config, prepare_local, train_round};
