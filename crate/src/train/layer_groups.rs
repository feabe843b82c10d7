//! Learning-rate multipliers for groups of layers (`training.layer_groups`): each group's
//! gradients go to the optimiser in an update of their own, at the base rate times the group's
//! multiplier. Optimiser state is kept per parameter, so the split changes nothing else.

use crate::config::LayerGroup;
use crate::error::{KilnError, Result};
use crate::model::TrainStep;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use std::collections::HashMap;

/// Which group each parameter is in, and the groups' multipliers.
#[derive(Debug, Clone, Default)]
pub struct LrGroups {
    group_of: HashMap<ParamId, usize>,
    multipliers: Vec<f64>,
}

impl LrGroups {
    /// The groups of `model`'s numbered layers; an error names a layer the model does not have.
    pub fn resolve<M: TrainStep>(model: &M, groups: &[LayerGroup]) -> Result<Self> {
        if groups.is_empty() {
            return Ok(Self::default());
        }
        let layers = model.layer_params();
        if layers.is_empty() {
            return Err(KilnError::Config(
                "training.layer_groups: this model has no numbered layers (a custom TrainStep \
                 that does not list them in layer_params)"
                    .into(),
            ));
        }
        let mut resolved = Self::default();
        for (g, group) in groups.iter().enumerate() {
            for (j, &layer) in group.layers.iter().enumerate() {
                let params = layers.get(layer).ok_or_else(|| {
                    KilnError::Config(format!(
                        "training.layer_groups[{g}].layers[{j}]: must be a layer index below {} \
                         (the network has {} layers), got {layer}",
                        layers.len(),
                        layers.len()
                    ))
                })?;
                for id in params {
                    resolved.group_of.insert(*id, g);
                }
            }
            resolved.multipliers.push(group.lr_multiplier);
        }
        Ok(resolved)
    }

    /// Whether every parameter trains at the base rate.
    pub fn is_empty(&self) -> bool {
        self.multipliers.is_empty()
    }

    /// Moves each group's gradients out of `grads` (what is left trains at the base rate);
    /// returns them with their multipliers.
    pub fn split<M: Module>(
        &self,
        model: &M,
        grads: &mut GradientsParams,
    ) -> Vec<(GradientsParams, f64)> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut splitter = Splitter {
            groups: self,
            grads,
            parts: self
                .multipliers
                .iter()
                .map(|_| GradientsParams::new())
                .collect(),
        };
        model.visit(&mut splitter);
        splitter
            .parts
            .into_iter()
            .zip(self.multipliers.iter().copied())
            .collect()
    }
}

struct Splitter<'a> {
    groups: &'a LrGroups,
    grads: &'a mut GradientsParams,
    parts: Vec<GradientsParams>,
}

impl ModuleVisitor for Splitter<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(&group) = self.groups.group_of.get(&param.id)
            && let Some(grad) = self.grads.remove::<D>(param.id)
            && let Some(part) = self.parts.get_mut(group)
        {
            part.register::<D>(param.id, grad);
        }
    }
}
