//! Bytes that may be gzip-compressed: decompressed within the file-size limit, so that a small
//! gzip bomb stops there; anything else is returned as it is.

use crate::error::{KilnError, Result};
use crate::limits::{Limits, check_file_size};
use std::io::Read;

/// `raw` decompressed when it starts with the gzip magic bytes, else `raw` itself. `what`
/// names the data in errors (corrupt gzip, over the file limit once decompressed).
pub fn decompress_if_gzipped(raw: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let limit = Limits::current().max_file_bytes;
    let hint = gzip_size_hint(&raw).min(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(hint);
    flate2::read::GzDecoder::new(raw.as_slice())
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| KilnError::Data(format!("{what}: corrupt gzip data: {e}")))?;
    check_file_size(out.len() as u64, &format!("{what} (decompressed)"))?;
    Ok(out)
}

/// The uncompressed size from a gzip trailer (it holds the size modulo 2^32), capped at
/// deflate's largest ratio: a capacity hint that spares a growing buffer its reallocations.
fn gzip_size_hint(gz: &[u8]) -> usize {
    let trailer = gz.len().checked_sub(4).and_then(|at| gz.get(at..));
    let size = trailer
        .and_then(|t| <[u8; 4]>::try_from(t).ok())
        .map_or(0, |t| u32::from_le_bytes(t) as usize);
    size.min(gz.len().saturating_mul(1032))
}
