//! `mean_pool` and `max_pool`: a sequence `[len, features]` pooled over time to `[features]`,
//! leaving padding out.

use super::activations::{Activations, Steps};
use super::kind::{LayerForward, LayerKind};
use super::registry::Layer;
use super::sample_shape::SampleShape;
use crate::error::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `mean_pool` layer (no parameters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeanPoolSpec {}

/// The config form of a `max_pool` layer (no parameters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxPoolSpec {}

/// The mean over the non-padding steps.
#[derive(Module, Debug, Default)]
pub struct MeanPool;

/// The maximum over the non-padding steps.
#[derive(Module, Debug, Default)]
pub struct MaxPool;

/// `[features]` of a sequence input.
fn pooled(at: &str, kind: &str, input: SampleShape) -> Result<SampleShape> {
    Ok(SampleShape::Vector(input.sequence(at, kind)?.1))
}

impl LayerKind for MeanPoolSpec {
    fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        pooled(at, "mean_pool", input)
    }

    fn build(&self, _input: SampleShape, _outputs: usize, _device: &Device) -> Layer {
        Layer::MeanPool(MeanPool)
    }
}

impl LayerKind for MaxPoolSpec {
    fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        pooled(at, "max_pool", input)
    }

    fn build(&self, _input: SampleShape, _outputs: usize, _device: &Device) -> Layer {
        Layer::MaxPool(MaxPool)
    }
}

impl MeanPool {
    /// `[batch, features]`: the mean of the non-padding steps.
    pub fn forward(&self, steps: Steps) -> Tensor<2> {
        let [batch, _, features] = steps.x.dims();
        let pooled = match steps.padding {
            None => steps.x.mean_dim(1),
            Some(padding) => {
                let keep = padding.bool_not().float().unsqueeze_dim::<3>(2);
                let count = keep.clone().sum_dim(1).clamp_min(1.0);
                (steps.x * keep).sum_dim(1) / count
            }
        };
        pooled.reshape([batch, features])
    }
}

impl MaxPool {
    /// `[batch, features]`: the maximum of the non-padding steps.
    pub fn forward(&self, steps: Steps) -> Tensor<2> {
        let [batch, len, features] = steps.x.dims();
        let x = match steps.padding {
            None => steps.x,
            Some(padding) => {
                let mask = padding.unsqueeze_dim::<3>(2).expand([batch, len, features]);
                steps.x.mask_fill(mask, -1.0e4)
            }
        };
        x.max_dim(1).reshape([batch, features])
    }
}

impl LayerForward for MeanPool {
    fn forward(&self, x: Activations) -> Activations {
        Activations::Vectors(MeanPool::forward(self, x.into_steps()))
    }
}

impl LayerForward for MaxPool {
    fn forward(&self, x: Activations) -> Activations {
        Activations::Vectors(MaxPool::forward(self, x.into_steps()))
    }
}
