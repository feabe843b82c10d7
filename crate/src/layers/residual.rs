//! `residual`: `x + layers(x)`, a block whose layers give back their input's shape.

use super::activations::Activations;
use super::kind::{InputLayout, LayerForward, LayerKind};
use super::registry::{Layer, LayerSpec};
use super::sample_shape::SampleShape;
use crate::error::{KilnError, Result};
use burn::module::Module;
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `residual` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResidualSpec {
    /// The block's layers, in any of the forms `model.layers` takes.
    #[serde(deserialize_with = "super::forms::deserialize")]
    #[schemars(schema_with = "super::forms::nested_schema")]
    pub layers: Vec<LayerSpec>,
}

/// A residual block: its layers' output added to its input.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// The block's layers.
    pub layers: Vec<Layer>,
}

impl ResidualSpec {
    /// Each inner layer with its config path and input shape, as far as the shapes fit.
    fn inputs(&self, at: &str, input: SampleShape, outputs: usize) -> Result<Vec<SampleShape>> {
        let mut shapes = Vec::with_capacity(self.layers.len() + 1);
        shapes.push(input);
        for (j, inner) in self.layers.iter().enumerate() {
            let shape = inner.output(&format!("{at}.layers[{j}]"), shapes[j], outputs)?;
            shapes.push(shape);
        }
        Ok(shapes)
    }
}

impl LayerKind for ResidualSpec {
    fn validate(&self, at: &str) -> Result<()> {
        self.layers
            .iter()
            .enumerate()
            .try_for_each(|(j, inner)| inner.kind().validate(&format!("{at}.layers[{j}]")))
    }

    fn output(&self, at: &str, input: SampleShape, outputs: usize) -> Result<SampleShape> {
        let shapes = self.inputs(at, input, outputs)?;
        let last = shapes.last().copied().unwrap_or(input);
        if last != input {
            return Err(KilnError::Config(format!(
                "{at}: a `residual` block must give back its input's shape {input:?}, but its \
                 layers end with {last:?}"
            )));
        }
        Ok(input)
    }

    fn parameters(&self, input: SampleShape, outputs: usize) -> Option<u64> {
        let shapes = self.inputs("", input, outputs).ok()?;
        self.layers
            .iter()
            .zip(shapes)
            .try_fold(0u64, |total, (inner, shape)| {
                total.checked_add(inner.kind().parameters(shape, outputs)?)
            })
    }

    fn build(&self, input: SampleShape, outputs: usize, device: &Device) -> Layer {
        // `output` has checked every inner shape before anything is built.
        let shapes = self
            .inputs("", input, outputs)
            .unwrap_or_else(|_| vec![input; self.layers.len()]);
        let layers = self
            .layers
            .iter()
            .zip(shapes)
            .map(|(inner, shape)| inner.kind().build(shape, outputs, device))
            .collect();
        Layer::Residual(ResidualBlock { layers })
    }
}

impl LayerForward for ResidualBlock {
    fn forward(&self, x: Activations) -> Activations {
        let skip = x.duplicate();
        let out = self
            .layers
            .iter()
            .fold(x, |x, layer| layer.built().forward(x));
        skip.plus(out)
    }

    fn input_layout(&self) -> InputLayout {
        self.layers
            .iter()
            .map(|layer| layer.built().input_layout())
            .find(|layout| *layout != InputLayout::Any)
            .unwrap_or(InputLayout::Any)
    }
}
