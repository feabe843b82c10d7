//! The ready-made architectures (`preset: mlp | cnn`) as explicit layer lists.

use crate::config::{ModelConfig, Preset};
use crate::layers::{
    Conv2dSpec, DropoutSpec, FlattenSpec, LayerSpec, LinearSpec, MaxPool2dSpec, ReluSpec,
};

/// The explicit layer list of a model config: its `layers`, or the preset expanded.
pub fn resolve_layers(model: &ModelConfig) -> Vec<LayerSpec> {
    if !model.layers.is_empty() {
        return model.layers.clone();
    }
    let hidden_block = |layers: &mut Vec<LayerSpec>, head: LayerSpec| {
        layers.push(head);
        layers.push(ReluSpec {}.into());
        if model.dropout > 0.0 {
            layers.push(
                DropoutSpec {
                    prob: model.dropout,
                }
                .into(),
            );
        }
    };
    let mut layers = Vec::new();
    match model.preset.unwrap_or(Preset::Mlp) {
        Preset::Mlp => {
            for width in &model.hidden {
                hidden_block(&mut layers, LinearSpec::new(Some(*width)).into());
            }
        }
        Preset::Cnn => {
            for channels in [16, 32] {
                let conv = Conv2dSpec {
                    channels,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                };
                layers.push(conv.into());
                layers.push(ReluSpec {}.into());
                let pool = MaxPool2dSpec {
                    kernel: 2,
                    stride: None,
                };
                layers.push(pool.into());
            }
            layers.push(FlattenSpec {}.into());
            hidden_block(&mut layers, LinearSpec::new(Some(128)).into());
        }
    }
    layers.push(LinearSpec::new(None).into());
    layers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{SampleShape, infer_shapes};

    #[test]
    fn cnn_preset_fits_digits() {
        let model = ModelConfig {
            preset: Some(Preset::Cnn),
            ..ModelConfig::default()
        };
        let layers = resolve_layers(&model);
        let shapes = infer_shapes(&layers, SampleShape::Image(1, 8, 8), 10).unwrap();
        assert_eq!(shapes.len(), layers.len());
    }

    #[test]
    fn a_huge_hidden_layer_is_refused_before_anything_is_built() {
        let model = ModelConfig {
            hidden: vec![100_000_000],
            ..ModelConfig::default()
        };
        let e = infer_shapes(&resolve_layers(&model), SampleShape::Vector(64), 10)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.layers[0]") && e.contains("KILN_MAX_"),
            "{e}"
        );
    }

    #[test]
    fn the_mlp_preset_is_linear_relu_dropout_then_the_output_layer() {
        let model = ModelConfig {
            hidden: vec![32, 16],
            dropout: 0.25,
            ..ModelConfig::default()
        };
        let kinds: Vec<String> = resolve_layers(&model)
            .iter()
            .map(LayerSpec::kind_name)
            .collect();
        assert_eq!(
            kinds,
            [
                "linear", "relu", "dropout", "linear", "relu", "dropout", "linear"
            ]
        );
    }
}
