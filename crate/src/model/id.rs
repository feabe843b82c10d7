//! Model ids: the one check every store relies on, as a type that only a valid id can have.

use crate::error::{KilnError, Result};

/// The longest model id.
pub const MAX_MODEL_ID_LEN: usize = 128;

/// A model id that passed [`ModelId::parse`]: GUIDs or simple names of ASCII letters, digits,
/// `-` and `_`, at most 128 characters — safe as a file name, an object key and a database key.
/// Every model store takes ids of this type, so no store can be handed `../escape`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelId(String);

impl ModelId {
    /// Checks `id` and wraps it; the error names the id and what is allowed.
    pub fn parse(id: &str) -> Result<Self> {
        let ok = !id.is_empty()
            && id.len() <= MAX_MODEL_ID_LEN
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(id.to_string()))
        } else {
            let shown: String = id.chars().take(64).collect();
            Err(KilnError::InvalidArgument(format!(
                "{shown:?} is not a valid model id (ASCII letters, digits, `-` and `_`, 1 to \
                 {MAX_MODEL_ID_LEN} characters)"
            )))
        }
    }

    /// A new random id (a v4 UUID).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_like_ids_are_refused() {
        for bad in [
            "",
            "../../escape",
            "a/b",
            "a\\b",
            ".",
            "..",
            "a.kiln",
            "a\0b",
            "é",
        ] {
            assert!(ModelId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ModelId::parse(&"a".repeat(129)).is_err());
        assert!(ModelId::parse(&"a".repeat(128)).is_ok());
        assert!(ModelId::parse(ModelId::random().as_str()).is_ok());
    }
}
