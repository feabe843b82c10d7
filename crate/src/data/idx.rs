//! IDX files (the MNIST family's format), plain or gzip-compressed.

use super::dataset::{Dataset, Targets};
use super::gzip::decompress_if_gzipped;
use crate::error::{KilnError, Result};
use crate::limits::{checked_elements, read_file_limited};
use std::path::Path;

/// The default location of Debian's `dataset-fashion-mnist` package.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = read_file_limited(path, "IDX file")?;
    decompress_if_gzipped(raw, &format!("IDX file {}", path.display()))
}

/// Parses an unsigned-byte IDX buffer: returns its dimensions and values (borrowed).
pub fn parse_idx_u8<'a>(bytes: &'a [u8], what: &str) -> Result<(Vec<usize>, &'a [u8])> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(KilnError::Data(format!(
            "{what}: not an IDX file (bad magic number)"
        )));
    }
    if bytes[2] != 0x08 {
        return Err(KilnError::Data(format!(
            "{what}: only unsigned-byte IDX data is supported, type code is {:#04x}",
            bytes[2]
        )));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(KilnError::Data(format!("{what}: truncated IDX header")));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let at = 4 + 4 * i;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    let count = checked_elements(&dims, what)?;
    let body = &bytes[header..];
    if body.len() != count {
        return Err(KilnError::Data(format!(
            "{what}: header promises {count} values for dimensions {dims:?}, file holds {}",
            body.len()
        )));
    }
    Ok((dims, body))
}

/// Loads an images file and a labels file as a classification data set of `[1, H, W]` images
/// with pixels scaled to [0, 1].
pub fn load_idx_pair(images: &Path, labels: &Path) -> Result<Dataset> {
    let image_file = read_maybe_gz(images)?;
    let label_file = read_maybe_gz(labels)?;
    let (dims, pixels) = parse_idx_u8(&image_file, &images.display().to_string())?;
    let (label_dims, label_bytes) = parse_idx_u8(&label_file, &labels.display().to_string())?;
    if label_dims.len() != 1 || label_dims[0] != dims[0] {
        return Err(KilnError::Data(format!(
            "{} holds {:?} labels but {} holds {} images",
            labels.display(),
            label_dims,
            images.display(),
            dims[0]
        )));
    }
    let sample_shape = match dims.len() {
        3 => vec![1, dims[1], dims[2]],
        2 => vec![dims[1]],
        _ => {
            return Err(KilnError::Data(format!(
                "{}: expected images of rank 2 or 3, got dimensions {dims:?}",
                images.display()
            )));
        }
    };
    if dims[0] == 0 || sample_shape.contains(&0) {
        return Err(KilnError::Data(format!(
            "{}: holds no images (dimensions {dims:?})",
            images.display()
        )));
    }
    let classes: Vec<u32> = label_bytes.iter().map(|&b| u32::from(b)).collect();
    let num_classes = classes.iter().max().map_or(0, |m| *m as usize + 1);
    let features = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    Dataset::new(
        features,
        Targets::Classes(classes),
        sample_shape,
        num_classes,
    )
    .map_err(|e| {
        KilnError::Data(format!(
            "{} with {}: {e}",
            images.display(),
            labels.display()
        ))
    })
}

/// Loads Fashion-MNIST's official train and test sets from `dir`.
pub fn load_fashion_mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    let file = |name: &str| dir.join(format!("{name}.gz"));
    let missing = |name: &str| !file(name).exists() && !dir.join(name).exists();
    if missing("train-images-idx3-ubyte") {
        return Err(KilnError::Data(format!(
            "Fashion-MNIST not found in {}: install it with `apt-get install \
             dataset-fashion-mnist`, or set data.path to a directory holding the four IDX files",
            dir.display()
        )));
    }
    let pick = |name: &str| {
        if file(name).exists() {
            file(name)
        } else {
            dir.join(name)
        }
    };
    let train = load_idx_pair(
        &pick("train-images-idx3-ubyte"),
        &pick("train-labels-idx1-ubyte"),
    )?;
    let test = load_idx_pair(
        &pick("t10k-images-idx3-ubyte"),
        &pick("t10k-labels-idx1-ubyte"),
    )?;
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error of an IDX pair names the file it is about.
    #[test]
    fn every_pair_error_names_the_file() {
        let dir = std::env::temp_dir().join(format!("kiln-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images = dir.join("images.idx");
        let labels = dir.join("labels.idx");
        let write = |path: &Path, bytes: &[u8]| std::fs::write(path, bytes).unwrap();
        let error = || load_idx_pair(&images, &labels).unwrap_err().to_string();
        // Images two of zero width: parsed, but no image can be built from them.
        write(&images, &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3]);
        write(&labels, &[0, 0, 8, 1, 0, 0, 0, 2, 0, 1]);
        assert!(error().contains("images.idx"), "{}", error());
        // A file that is not IDX, a truncated header, a corrupt gzip stream, a missing file.
        for (bytes, names) in [
            (&b"not idx"[..], "labels.idx"),
            (&[0, 0, 8, 3, 0, 0][..], "labels.idx"),
            (&[0x1f, 0x8b, 8, 0, 1, 2, 3][..], "labels.idx"),
        ] {
            write(
                &images,
                &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 7, 9],
            );
            write(&labels, bytes);
            assert!(error().contains(names), "{}", error());
        }
        std::fs::remove_file(&labels).unwrap();
        assert!(error().contains("labels.idx"), "{}", error());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_a_small_idx() {
        let mut bytes = vec![0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        bytes.extend([1, 2, 3, 4, 5, 6]);
        let (dims, values) = parse_idx_u8(&bytes, "t").unwrap();
        assert_eq!(dims, vec![2, 3]);
        assert_eq!(values, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn overflowing_dimensions_are_an_error_not_an_abort() {
        // 65536 × 2^24 × 2^24 wraps to 0 in 64 bits.
        let mut bytes = vec![0, 0, 8, 3];
        for d in [65536u32, 1 << 24, 1 << 24] {
            bytes.extend(d.to_be_bytes());
        }
        let e = parse_idx_u8(&bytes, "images.idx").unwrap_err().to_string();
        assert!(e.contains("images.idx"), "{e}");
    }

    #[test]
    fn rejects_truncated_body() {
        let bytes = vec![0, 0, 8, 1, 0, 0, 0, 5, 1, 2];
        assert!(parse_idx_u8(&bytes, "t").is_err());
    }
}
