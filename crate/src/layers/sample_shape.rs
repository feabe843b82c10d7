//! The shape of one sample as it flows through the layers, and the checks layer kinds share
//! when they read it (images, sequences, windows sliding over them).

use crate::error::{KilnError, Result};

/// The shape of one sample (or one layer's activation for one sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleShape {
    /// `[features]`.
    Vector(usize),
    /// `[channels, height, width]`.
    Image(usize, usize, usize),
    /// `len` token ids below `vocab`.
    Tokens(usize, usize),
    /// `[len, features]`: a sequence of vectors.
    Sequence(usize, usize),
}

impl SampleShape {
    /// The shape of samples with dimensions `dims`: token ids when the data has a vocabulary
    /// of `vocab` tokens, else vectors or images.
    pub fn from_input(dims: &[usize], vocab: Option<usize>) -> Result<Self> {
        match (dims, vocab) {
            ([len], Some(vocab)) => Ok(Self::Tokens(*len, vocab)),
            ([n], None) => Ok(Self::Vector(*n)),
            ([c, h, w], None) => Ok(Self::Image(*c, *h, *w)),
            (other, Some(_)) => Err(KilnError::Data(format!(
                "token samples are [length], got shape {other:?}"
            ))),
            (other, None) => Err(KilnError::Data(format!(
                "samples must be vectors [features] or images [channels, height, width], got \
                 shape {other:?}"
            ))),
        }
    }

    /// Vectors or images of dimensions `dims`.
    pub fn from_dims(dims: &[usize]) -> Result<Self> {
        Self::from_input(dims, None)
    }

    /// Values in one sample.
    pub fn len(self) -> usize {
        match self {
            Self::Vector(n) => n,
            Self::Image(c, h, w) => c.saturating_mul(h).saturating_mul(w),
            Self::Tokens(len, _) => len,
            Self::Sequence(len, features) => len.saturating_mul(features),
        }
    }

    /// Whether a sample holds no values.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The exact number of values, or `None` when it overflows.
    pub fn exact_len(self) -> Option<u64> {
        match self {
            Self::Vector(n) | Self::Tokens(n, _) => Some(n as u64),
            Self::Image(c, h, w) => (c as u64).checked_mul(h as u64)?.checked_mul(w as u64),
            Self::Sequence(len, f) => (len as u64).checked_mul(f as u64),
        }
    }

    /// The size a layer reads per position: vector features, image channels, sequence
    /// features (for token ids, their count).
    pub fn features(self) -> usize {
        match self {
            Self::Vector(n) | Self::Sequence(_, n) | Self::Tokens(n, _) => n,
            Self::Image(c, _, _) => c,
        }
    }

    /// `(channels, height, width)` of an image input, or an error naming the layer at `at`.
    pub fn image(self, at: &str, kind: &str) -> Result<(usize, usize, usize)> {
        match self {
            Self::Image(c, h, w) => Ok((c, h, w)),
            other => Err(KilnError::Config(format!(
                "{at}: `{kind}` needs image samples [channels, height, width], but its input is \
                 {other:?}"
            ))),
        }
    }

    /// `(len, features)` of a sequence input, or an error naming the layer at `at`.
    pub fn sequence(self, at: &str, kind: &str) -> Result<(usize, usize)> {
        match self {
            Self::Sequence(len, features) => Ok((len, features)),
            other => Err(KilnError::Config(format!(
                "{at}: `{kind}` needs a sequence [length, features] (e.g. after `embedding`), but \
                 its input is {other:?}"
            ))),
        }
    }
}

/// A window sliding over one dimension: the size of a convolution's or pooling's output.
pub struct Window {
    /// The window's size.
    pub kernel: usize,
    /// Its step.
    pub stride: usize,
    /// Zeros added at both ends.
    pub padding: usize,
}

impl Window {
    /// The output size over an input of `size`, or an error naming the layer at `at`.
    pub fn output(&self, at: &str, kind: &str, size: usize) -> Result<usize> {
        let Self {
            kernel,
            stride,
            padding,
        } = *self;
        if kernel == 0 || stride == 0 {
            return Err(KilnError::Config(format!(
                "{at}: `{kind}` kernel and stride must be >= 1, got {kernel} and {stride}"
            )));
        }
        let padded = padding
            .checked_mul(2)
            .and_then(|p| p.checked_add(size))
            .ok_or_else(|| {
                KilnError::Config(format!("{at}: `{kind}` padding {padding} is far too large"))
            })?;
        if padded < kernel {
            return Err(KilnError::Config(format!(
                "{at}: `{kind}` kernel {kernel} is larger than its (padded) input size {padded}"
            )));
        }
        Ok((padded - kernel) / stride + 1)
    }
}

/// `x as u64`, for parameter counts.
pub fn wide(x: usize) -> u64 {
    x as u64
}
