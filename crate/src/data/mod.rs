//! Data: loading the configured source, splitting it, and standardising features.

mod csv;
mod csv_records;
mod dataset;
mod digits;
mod gzip;
mod idx;
mod load;
mod split;
mod text;

pub use csv::{
    CsvTable, first_record_is_header, for_each_row, label_index, load_csv_file, parse_table,
    read_text_file,
};
pub use csv_records::{Record, Records, records};
pub use dataset::{Dataset, Targets, dataset_from_labels, labels_to_classes};
pub use digits::{digits_available, load_digits, provide_digits};
pub use idx::{FASHION_MNIST_DIR, load_fashion_mnist, load_idx_pair, parse_idx_u8};
pub use load::{Loaded, load_and_prepare, load_source, prepare};
pub use split::{Normalization, Splits, epoch_order, split_indices, split_warnings};
pub use text::{LabelledTexts, PAD, UNKNOWN, Vocabulary};
#[cfg(not(target_family = "wasm"))]
pub use text::{load_texts, read_text_column};
