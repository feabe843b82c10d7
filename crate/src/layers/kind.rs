//! What every layer kind tells the network about itself: the checks of its config form, its
//! output shape, its parameter count and how to build it; and, once built, its forward pass and
//! how PyTorch names its parameters.

use super::activations::Activations;
use super::registry::Layer;
use super::sample_shape::SampleShape;
use crate::error::Result;
use burn::tensor::Device;

/// A layer kind's config form (`{type: linear, out: 64}` read into the kind's spec).
pub trait LayerKind {
    /// Checks the kind's own parameters; `at` is its config path (`model.layers[2]`).
    fn validate(&self, _at: &str) -> Result<()> {
        Ok(())
    }

    /// Whether it reads token ids (only an `embedding` does; every other layer needs vectors).
    fn reads_tokens(&self) -> bool {
        false
    }

    /// The shape of one sample's output given its input's, or an error naming `at` and the
    /// mismatch. Token inputs reach only kinds that [read tokens](Self::reads_tokens).
    fn output(&self, at: &str, input: SampleShape, outputs: usize) -> Result<SampleShape>;

    /// The trainable values it holds for input shape `input` (`None` on overflow). `outputs`
    /// is the data's output count, which a final `linear` without `out` takes.
    fn parameters(&self, _input: SampleShape, _outputs: usize) -> Option<u64> {
        Some(0)
    }

    /// The burn module on `device` for inputs of shape `input`, which [`Self::output`] has
    /// accepted.
    fn build(&self, input: SampleShape, outputs: usize, device: &Device) -> Layer;
}

/// The batches a built layer reads first, which decides whether a network over images keeps
/// its batches as images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputLayout {
    /// Any batch, elementwise (activations, dropout): the next layer decides.
    Any,
    /// `[batch, channels, height, width]` images.
    Images,
    /// Vectors, token ids or sequences.
    Flat,
}

/// How a PyTorch state dict names one of a layer's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TorchParameter {
    /// PyTorch's name (`weight`, `running_mean`).
    pub torch: &'static str,
    /// burn's name for it (`gamma`), or `None` for PyTorch bookkeeping Kiln has no use for
    /// (`num_batches_tracked`).
    pub burn: Option<&'static str>,
    /// Whether PyTorch stores it transposed (a linear weight is `[out, in]` there).
    pub transpose: bool,
}

impl TorchParameter {
    /// A parameter both name `name`, in the same layout.
    pub const fn same(name: &'static str) -> Self {
        Self {
            torch: name,
            burn: Some(name),
            transpose: false,
        }
    }

    /// PyTorch's `torch` is burn's `burn`, in the same layout.
    pub const fn renamed(torch: &'static str, burn: &'static str) -> Self {
        Self {
            torch,
            burn: Some(burn),
            transpose: false,
        }
    }
}

/// A built layer.
pub trait LayerForward {
    /// Applies the layer to a batch.
    fn forward(&self, x: Activations) -> Activations;

    /// The batches it reads first.
    fn input_layout(&self) -> InputLayout {
        InputLayout::Flat
    }

    /// The parameters a PyTorch state dict may give it (none by default).
    fn torch_parameters(&self) -> &'static [TorchParameter] {
        &[]
    }
}
