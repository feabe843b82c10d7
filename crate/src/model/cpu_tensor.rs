//! Direct access to f32 tensors of the CPU (`flex`) backend, for the one-pass kernels that
//! replace chains of small tensor operations there.

use burn::tensor::Tensor;
use burn_flex::{Flex, FlexTensor};

/// The f32 tensor's CPU primitive laid out contiguously from offset 0 (copied if it was a view),
/// or `None` when the tensor lives on another backend.
pub fn contiguous_flex<const D: usize>(tensor: &Tensor<D>) -> Option<FlexTensor> {
    let flex = tensor.clone().try_into_primitive::<Flex>().ok()?;
    let len = flex.layout().shape().num_elements();
    if flex.layout().contiguous_offsets() == Some((0, len))
        && flex.bytes().len() == len * size_of::<f32>()
    {
        Some(flex)
    } else {
        Some(flex.to_contiguous())
    }
}
