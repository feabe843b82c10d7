//! A page of a registry list: how many items, after which one (a cursor: creation time, then
//! id — a stable order), in which direction.

/// Where a page starts: after the item created at `created_at` with id `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The item's creation time (ms since the epoch).
    pub created_at: i64,
    /// The item's id.
    pub id: String,
}

impl Cursor {
    /// The cursor's text: `<created_at>.<id>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    /// The cursor a client sent back, if it is one this server made.
    pub fn decode(text: &str) -> Option<Self> {
        let (at, id) = text.split_once('.')?;
        let valid_id = !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid_id.then_some(())?;
        Some(Self {
            created_at: at.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// A checked [`PageQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Items per page.
    pub limit: u32,
    /// Where the page starts (none: at the beginning).
    pub after: Option<Cursor>,
    /// Newest first.
    pub newest_first: bool,
}
