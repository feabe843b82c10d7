//! A batch of activations as it flows through the layers: vectors, images, token ids or
//! sequences with their padding mask.

use burn::tensor::{Bool, Tensor};

/// Applies a rank-generic operation to a batch of any kind, written once:
/// `every_rank!(x, |t| layer.forward(t))` (token ids pass through).
macro_rules! every_rank {
    ($x:expr, |$t:ident| $body:expr) => {
        $x.map(|$t| $body, |$t| $body, |$t| $body)
    };
}
pub(crate) use every_rank;

/// A batch of sequences and, while it lines up with the tokens, which steps are padding.
pub struct Steps {
    /// `[batch, len, features]`.
    pub x: Tensor<3>,
    /// `[batch, len]`, true at padding.
    pub padding: Option<Tensor<2, Bool>>,
}

/// A batch of activations: vectors, images, token ids or sequences.
#[allow(clippy::large_enum_variant)] // a few moves per forward pass, next to tensor work
pub enum Activations {
    /// `[batch, features]`.
    Vectors(Tensor<2>),
    /// `[batch, channels, height, width]`.
    Images(Tensor<4>),
    /// Token ids as floats `[batch, len]` (0 is padding).
    Tokens(Tensor<2>),
    /// `[batch, len, features]` and its padding.
    Sequences(Steps),
}

impl Activations {
    /// Another handle on the same activations (tensors are shared, not copied).
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Vectors(x) => Self::Vectors(x.clone()),
            Self::Images(x) => Self::Images(x.clone()),
            Self::Tokens(x) => Self::Tokens(x.clone()),
            Self::Sequences(steps) => Self::Sequences(Steps {
                x: steps.x.clone(),
                padding: steps.padding.clone(),
            }),
        }
    }

    /// `self + other` of the same shape (a residual connection); sequences keep their padding.
    pub fn plus(self, other: Self) -> Self {
        match (self, other) {
            (Self::Images(a), Self::Images(b)) => Self::Images(a + b),
            (Self::Sequences(a), Self::Sequences(b)) => Self::Sequences(Steps {
                x: a.x + b.x,
                padding: a.padding,
            }),
            (a, b) => Self::Vectors(a.into_vectors() + b.into_vectors()),
        }
    }

    /// `[batch, values]`: every sample flattened row-major.
    pub fn into_vectors(self) -> Tensor<2> {
        match self {
            Self::Vectors(x) | Self::Tokens(x) => x,
            Self::Images(x) => x.flatten(1, 3),
            Self::Sequences(steps) => steps.x.flatten(1, 2),
        }
    }

    /// The sequence a sequence layer reads (shape inference only places those after one).
    pub fn into_steps(self) -> Steps {
        match self {
            Self::Sequences(steps) => steps,
            other => {
                let x = other.into_vectors();
                let [batch, features] = x.dims();
                Steps {
                    x: x.reshape([batch, 1, features]),
                    padding: None,
                }
            }
        }
    }

    /// Applies a rank-generic operation to any kind of batch (token ids pass through).
    pub fn map(
        self,
        vectors: impl FnOnce(Tensor<2>) -> Tensor<2>,
        images: impl FnOnce(Tensor<4>) -> Tensor<4>,
        sequences: impl FnOnce(Tensor<3>) -> Tensor<3>,
    ) -> Self {
        match self {
            Self::Vectors(x) => Self::Vectors(vectors(x)),
            Self::Images(x) => Self::Images(images(x)),
            Self::Tokens(x) => Self::Tokens(x),
            Self::Sequences(Steps { x, padding }) => Self::Sequences(Steps {
                x: sequences(x),
                padding,
            }),
        }
    }
}
