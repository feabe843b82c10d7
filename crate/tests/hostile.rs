//! Hostile input: a property suite over every parser that takes outside bytes — configs (YAML,
//! JSON, values), CSV, IDX (plain and gzip), `.kiln` headers and weights, the burnpack payload.
//! Properties: never panics, never allocates past the configured limits (a counting allocator
//! measures every case), returns within a time bound, and errors name their field or position.
//! Fixed seeds and bounded case counts keep CI time predictable (`make test` runs it).
//! The reproductions are kept as plain regression tests at the bottom.
#![cfg(not(target_family = "wasm"))]

use kiln::Config;
use kiln::data::{load_idx_pair, parse_idx_u8, parse_table};
use kiln::limits::Limits;
use kiln::model::{ModelHeader, Network, Predictor, SavedModel, export_weights, resolve_layers};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngSeed};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---- measuring every case: peak heap and time ----

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `alloc` with this layout.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The limits this suite runs under: tighter than the defaults, so "within the limits" can
/// be checked against a small heap budget.
const SUITE_LIMITS: Limits = Limits {
    max_config_bytes: 256 << 10,
    max_config_depth: 32,
    max_layers: 64,
    max_parameters: 2_000_000,
    max_tensor_elements: 4_000_000,
    max_file_bytes: 8 << 20,
};

/// The most a single case may allocate above what was live before it: the largest tensors
/// the limits allow (f32 weights, Adam-free inference) with room for copies.
const HEAP_BUDGET: usize = 160 << 20;

/// The most a single case may take (debug build, a loaded 2-core machine).
const TIME_BUDGET: Duration = Duration::from_secs(5);

/// Cases run one at a time (the allocator counts the whole process).
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs one case under the suite's limits; fails when it allocates or takes too much.
fn measured<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    SUITE_LIMITS.install();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    assert!(
        peak <= HEAP_BUDGET,
        "{what}: allocated {peak} bytes, over the {HEAP_BUDGET}-byte budget"
    );
    assert!(took <= TIME_BUDGET, "{what}: took {took:?}");
    out
}

fn runner(cases: u32) -> RunnerConfig {
    RunnerConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x6b696c6e),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..RunnerConfig::default()
    }
}

// ---- a real saved model to tamper with ----

fn small_model() -> &'static SavedModel {
    static MODEL: OnceLock<SavedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let config = Config::from_yaml_str("name: tiny\nmodel:\n  preset: mlp\n  hidden: [8]\n")
            .expect("valid config");
        let device = kiln::backend::cpu_device();
        let network = Network::build(&resolve_layers(&config.model), &[4], None, 3, &device)
            .expect("network");
        let weights = futures::executor::block_on(export_weights(&network)).expect("export");
        SavedModel {
            header: ModelHeader {
                model_id: "tiny-model".into(),
                name: "tiny".into(),
                architecture: kiln::model::CONFIG_ARCHITECTURE.into(),
                created_unix_ms: 0,
                kiln_version: "test".into(),
                config,
                input_shape: vec![4],
                num_outputs: 3,
                normalization: Some(kiln::data::Normalization {
                    mean: vec![0.5; 4],
                    std: vec![2.0; 4],
                }),
                metrics: Default::default(),
                vocabulary: None,
            },
            weights,
        }
    })
}

/// Loads model bytes as every entry point does, and predicts one batch: must never panic.
fn load_and_predict(bytes: &[u8]) -> Result<Vec<f32>, String> {
    let saved = SavedModel::from_bytes(bytes).map_err(|e| e.to_string())?;
    let device = kiln::backend::cpu_device();
    let predictor = Predictor::new(saved, &device).map_err(|e| e.to_string())?;
    let n = predictor.sample_len();
    let features: Vec<f32> = (0..2 * n).map(|i| i as f32 * 0.25).collect();
    let out =
        futures::executor::block_on(predictor.predict(&features)).map_err(|e| e.to_string())?;
    if out.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "non-finite prediction from an accepted model: {out:?}"
        ));
    }
    Ok(out)
}

/// A model file with `header` as its JSON header and the real weights.
fn with_header(header: &serde_json::Value, weights: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("json");
    let mut bytes = b"KILNMDL1".to_vec();
    bytes.extend((json.len() as u32).to_le_bytes());
    bytes.extend(json);
    bytes.extend(weights);
    bytes
}

// ---- generators ----

/// Numbers a hostile user would try.
fn nasty_number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::json!(0)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1)),
        Just(serde_json::json!(65536)),
        Just(serde_json::json!(100_000_000u64)),
        Just(serde_json::json!(u32::MAX)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(i64::MIN)),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!(-1e-300)),
        Just(serde_json::json!(0.5)),
        any::<i32>().prop_map(|v| serde_json::json!(v)),
    ]
}

/// Any JSON value, small.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        nasty_number(),
        "[a-z_./\\\\\\x00]{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field paths of the config, as a user writes them.
const FIELDS: &[&str] = &[
    "name",
    "seed",
    "task",
    "data.source",
    "data.path",
    "data.label_column",
    "data.split",
    "data.limit",
    "model.preset",
    "model.hidden",
    "model.dropout",
    "model.layers",
    "training.num_passes",
    "training.batch_size",
    "training.gradient_accumulation_steps",
    "training.weight_optimization.learning_rate",
    "training.weight_optimization.optimization_method",
    "training.weight_optimization.betas",
    "training.lr_scheduler",
    "validation.every",
    "validation.metrics",
    "early_stopping",
    "checkpoint.main_metric",
];

fn set_path(root: &mut serde_json::Value, path: &str, value: serde_json::Value) {
    let mut at = root;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if !at.get(*part).is_some_and(serde_json::Value::is_object) {
            at[*part] = serde_json::json!({});
        }
        at = &mut at[*part];
    }
    at[parts[parts.len() - 1]] = value;
}

/// Text edits of a valid config: insert, delete or replace a few characters.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0u8..3,
            "[\\[\\]{}:,\\- a-z0-9#\"'\\n.&*!|>]",
        ),
        1..6,
    )
    .prop_map(move |edits| {
        let mut text: Vec<char> = base.chars().collect();
        for (at, kind, with) in edits {
            let i = at.index(text.len().max(1)).min(text.len());
            let end = if kind > 0 && i < text.len() { i + 1 } else { i };
            let insert = if kind == 1 { String::new() } else { with };
            text.splice(i..end, insert.chars());
        }
        text.into_iter().collect()
    })
}

// ---- properties ----

/// Where a config error may point: a line/column, a field path, or the config as a whole.
fn names_a_place(message: &str) -> bool {
    let sections = [
        "name",
        "seed",
        "task",
        "deterministic",
        "fast_dev_run",
        "data",
        "model",
        "training",
        "validation",
        "early_stopping",
        "checkpoint",
    ];
    message.contains("line ")
        || message.contains("(top level)")
        || message.contains("config ")
        || message.contains("config (")
        || sections.iter().any(|s| {
            message.contains(&format!("error: {s}")) || message.contains(&format!(": {s}."))
        })
}

proptest! {
    #![proptest_config(runner(500))]

    #[test]
    fn config_text_never_panics_and_errors_name_a_place(
        text in prop_oneof![
            "\\PC{0,400}",
            mutated(kiln::config::DEFAULT_CONFIG_YAML),
            (0usize..200, "[\\[{]").prop_map(|(n, c)| c.repeat(n)),
            json_value().prop_map(|v| v.to_string()),
        ]
    ) {
        for (kind, result) in [
            ("yaml", measured("yaml config", || Config::from_yaml_str(&text))),
            ("json", measured("json config", || Config::from_json_str(&text))),
        ] {
            if let Err(e) = result {
                let message = e.to_string();
                prop_assert!(message.starts_with("config error: "), "{kind}: {message}");
                prop_assert!(names_a_place(&message), "{kind}: no place named in: {message}");
            }
        }
    }

    #[test]
    fn config_values_name_the_field_they_break(
        field in prop::sample::select(FIELDS),
        value in json_value(),
    ) {
        let mut config = serde_json::json!({});
        set_path(&mut config, field, value.clone());
        let result = measured("config value", || Config::from_value(config.clone()));
        if let Err(e) = result {
            let message = e.to_string();
            let section = field.split('.').next().unwrap_or(field);
            prop_assert!(
                message.contains(section) || message.contains("(top level)"),
                "setting {field} = {value} gave an error naming neither it nor its section: {message}"
            );
        }
    }

    #[test]
    fn csv_never_panics_and_errors_name_the_file(
        rows in prop::collection::vec(
            prop::collection::vec(
                prop::sample::select(&["0", "1", "2", "-1", "0.5", "x", "", "nan", "inf",
                    "1e400", "\"3\"", "1e6", "4294967296"][..]),
                0..5,
            ),
            0..8,
        ),
        header in any::<bool>(),
        label in prop_oneof![Just(None), (0usize..6).prop_map(Some)],
        regression in any::<bool>(),
    ) {
        let text: String = rows.iter().map(|r| r.join(",") + "\n").collect();
        let task = if regression { kiln::config::Task::Regression } else { kiln::config::Task::Classification };
        let column = label.map(kiln::config::LabelColumn::Index);
        let result = measured("csv", || {
            parse_table(&text, header, "t.csv").and_then(|t| t.into_dataset(column.as_ref(), task))
        });
        if let Err(e) = result {
            let message = e.to_string();
            prop_assert!(
                message.contains("t.csv") || message.contains("classes") || message.contains("data.label_column"),
                "{message}"
            );
        }
    }

    #[test]
    fn idx_never_panics_or_overallocates(
        code in prop::sample::select(&[0x08u8, 0x09, 0x0d][..]),
        dims in prop::collection::vec(
            prop::sample::select(&[0u32, 1, 2, 3, 28, 65536, 1 << 24, u32::MAX][..]),
            0..5,
        ),
        body in prop::collection::vec(any::<u8>(), 0..64),
        truncate in any::<prop::sample::Index>(),
        gzip in any::<bool>(),
    ) {
        let mut bytes = vec![0, 0, code, dims.len() as u8];
        for d in &dims {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(&body);
        let cut = truncate.index(bytes.len() + 1);
        let bytes = &bytes[..cut];
        if let Err(e) = measured("idx bytes", || parse_idx_u8(bytes, "images.idx")) {
            prop_assert!(e.to_string().contains("images.idx"), "{e}");
        }
        let dir = tempfile_dir();
        let images = dir.join(if gzip { "img.gz" } else { "img" });
        let labels = dir.join("lab");
        write_file(&images, bytes, gzip);
        write_file(&labels, &[0, 0, 8, 1, 0, 0, 0, 2, 0, 1], false);
        if let Err(e) = measured("idx files", || load_idx_pair(&images, &labels)) {
            let message = e.to_string();
            prop_assert!(message.contains("img") || message.contains("lab"), "{message}");
        }
    }

    #[test]
    fn tampered_model_bytes_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        truncate in prop_oneof![Just(None), any::<prop::sample::Index>().prop_map(Some)],
        weights_only in any::<bool>(),
    ) {
        let mut bytes = small_model().to_bytes().expect("bytes");
        let header_end = bytes.len() - small_model().weights.len();
        for (at, value) in flips {
            let i = if weights_only {
                header_end + at.index(bytes.len() - header_end)
            } else {
                at.index(bytes.len())
            };
            bytes[i] = value;
        }
        if let Some(at) = truncate {
            bytes.truncate(at.index(bytes.len() + 1));
        }
        if let Err(message) = measured("tampered model", || load_and_predict(&bytes)) {
            prop_assert!(
                message.starts_with("model error") || message.starts_with("invalid argument"),
                "{message}"
            );
        }
    }

    #[test]
    fn tampered_model_headers_never_panic_or_overallocate(
        field in prop::sample::select(&[
            "/input_shape", "/num_outputs", "/config/model/hidden", "/config/model/layers",
            "/normalization/mean", "/normalization/std", "/model_id", "/config/task",
            "/config/model/preset", "/normalization",
        ][..]),
        value in prop_oneof![
            json_value(),
            prop::collection::vec(nasty_number(), 0..4).prop_map(serde_json::Value::Array),
        ],
    ) {
        let model = small_model();
        let mut header = serde_json::to_value(&model.header).expect("header json");
        if let Some(slot) = header.pointer_mut(field) {
            *slot = value;
        }
        let bytes = with_header(&header, &model.weights);
        if let Err(message) = measured("tampered header", || load_and_predict(&bytes)) {
            prop_assert!(
                message.starts_with("model error") || message.starts_with("invalid argument"),
                "{message}"
            );
        }
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kiln-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    })
    .clone()
}

fn write_file(path: &std::path::Path, bytes: &[u8], gzip: bool) {
    let data = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("gzip");
        encoder.finish().expect("gzip")
    } else {
        bytes.to_vec()
    };
    std::fs::write(path, data).expect("write");
}

// ---- the reproductions ----

fn config_error(text: &str) -> String {
    measured("config", || Config::from_yaml_str(text))
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn a_16_byte_idx_header_with_wrapping_dimensions_is_an_error() {
    let dir = tempfile_dir();
    let images = dir.join("wrap-images");
    let labels = dir.join("wrap-labels");
    let mut header = vec![0, 0, 8, 3];
    for d in [65536u32, 1 << 24, 1 << 24] {
        header.extend(d.to_be_bytes());
    }
    write_file(&images, &header, false);
    let mut label_file = vec![0, 0, 8, 1];
    label_file.extend(65536u32.to_be_bytes());
    label_file.extend(vec![1u8; 65536]);
    write_file(&labels, &label_file, false);
    let e = measured("wrapping idx", || load_idx_pair(&images, &labels))
        .expect_err("refused")
        .to_string();
    assert!(e.contains("wrap-images"), "{e}");
}

#[test]
fn a_hundred_million_wide_hidden_layer_is_refused_at_build_and_in_a_header() {
    let config = Config::from_yaml_str("model:\n  hidden: [100000000]\n")
        .expect("the config alone is valid");
    let device = kiln::backend::cpu_device();
    let e = measured("huge build", || {
        Network::build(&resolve_layers(&config.model), &[64], None, 10, &device)
    })
    .expect_err("refused")
    .to_string();
    assert!(e.contains("model.layers[0]") && e.contains("limit"), "{e}");
    let model = small_model();
    let mut header = serde_json::to_value(&model.header).expect("json");
    header["config"]["model"]["hidden"] = serde_json::json!([100_000_000]);
    let e = measured("huge header", || {
        load_and_predict(&with_header(&header, &model.weights))
    })
    .expect_err("refused");
    assert!(e.contains("model.layers[0]"), "{e}");
}

#[test]
fn a_small_header_cannot_ask_for_more_weights_than_the_file_holds() {
    let model = small_model();
    let mut header = serde_json::to_value(&model.header).expect("json");
    // 1.6 million parameters: within the suite's limits, far more than the file's weights.
    header["config"]["model"]["hidden"] = serde_json::json!([200_000]);
    let e = measured("big header, small weights", || {
        load_and_predict(&with_header(&header, &model.weights))
    })
    .expect_err("refused");
    assert!(e.contains("too small"), "{e}");
}

#[test]
fn deep_or_huge_configs_are_refused_quickly() {
    let e = config_error(&"[".repeat(100_000));
    assert!(e.contains("KILN_MAX_CONFIG_DEPTH"), "{e}");
    let big = format!("model:\n  hidden: [{}]\n", vec!["1"; 200_000].join(","));
    let e = config_error(&big);
    assert!(e.contains("KILN_MAX_CONFIG_BYTES"), "{e}");
    let many = format!("model:\n  hidden: [{}]\n", vec!["1"; 1000].join(","));
    let e = config_error(&many);
    assert!(
        e.contains("model.hidden") && e.contains("KILN_MAX_LAYERS"),
        "{e}"
    );
}

#[test]
fn messages_name_the_value_and_what_is_allowed() {
    for (yaml, expect) in [
        (
            "training:\n  weight_optimization:\n    learning_rate: .nan\n",
            "training.weight_optimization.learning_rate: must be a finite number, got .nan",
        ),
        (
            "training:\n  weight_optimization:\n    learning_rate: .inf\n",
            "training.weight_optimization.learning_rate: must be a finite number, got .inf",
        ),
        (
            "training:\n  weight_optimization:\n    learning_rate: 1e400\n",
            "training.weight_optimization.learning_rate: `1e400` is out of the range",
        ),
        (
            "data:\n  label_column: -1\n",
            "data.label_column: must be a column name (a string) or a 0-based column index",
        ),
        (
            "name: \"a\\0b\"\n",
            "name: must not hold control characters",
        ),
    ] {
        let e = config_error(yaml);
        assert!(e.contains(expect), "{yaml:?} gave: {e}");
    }
    let e = config_error(&format!("name: {}\n", "n".repeat(500)));
    assert!(e.contains("name: must be at most 128 characters"), "{e}");
}

#[test]
fn a_yaml_alias_bomb_is_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            [prev.as_str(); 9].join(", ")
        ));
    }
    let start = std::time::Instant::now();
    let e = config_error(&text);
    assert!(start.elapsed().as_secs_f64() < 5.0, "{:?}", start.elapsed());
    // 9^10 values from 11 lines: the expansion stops at the budget (one value per byte of the
    // config size limit), not after allocating them.
    assert!(
        e.starts_with("config error: malformed YAML at line ")
            && e.contains("aliases expand the config to more than")
            && e.contains("KILN_MAX_CONFIG_BYTES"),
        "{e}"
    );
}

/// A gzip file of `output_len` zero bytes, written as deflate's densest form (one literal,
/// then back-references of 258 bytes at distance 1: 13 bits each), so that a file of a few
/// MB unpacks to hundreds without compressing them first. The CRC in the trailer is left 0:
/// a decoder that stops at the file limit never reaches it.
fn gzip_bomb(output_len: usize) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let (mut acc, mut bits) = (0u64, 0u32);
    // Huffman codes go out most significant bit first, everything else least first.
    let mut put = |value: u64, count: u32, huffman: bool, out: &mut Vec<u8>| {
        let value = if huffman {
            value.reverse_bits() >> (64 - count)
        } else {
            value
        };
        acc |= value << bits;
        bits += count;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    };
    put(1, 1, false, &mut out); // the last block
    put(1, 2, false, &mut out); // fixed Huffman codes
    put(0x30, 8, true, &mut out); // literal 0
    for _ in 0..(output_len - 1) / 258 {
        put(0xc5, 8, true, &mut out); // length 258 (symbol 285)
        put(0, 5, true, &mut out); // distance 1
    }
    put(0, 7, true, &mut out); // end of block
    put(0, 7, false, &mut out); // pad to a byte
    out.extend(0u32.to_le_bytes());
    out.extend((output_len as u32).to_le_bytes());
    out
}

#[test]
fn a_gzip_bomb_stops_at_the_file_limit() {
    let dir = tempfile_dir();
    let images = dir.join("bomb-images.gz");
    let labels = dir.join("bomb-labels");
    // 1 + 258 * n bytes of zeros, twice the heap budget: an unbounded decoder fails the budget.
    let unpacked = 1 + 258 * ((2 * HEAP_BUDGET) / 258);
    let bomb = gzip_bomb(unpacked);
    let limit = SUITE_LIMITS.max_file_bytes;
    assert!(
        (bomb.len() as u64) < limit,
        "the file itself is under the limit"
    );
    write_file(&images, &bomb, false);
    write_file(&labels, &[0, 0, 8, 1, 0, 0, 0, 1, 0], false);
    let e = measured("gzip bomb", || load_idx_pair(&images, &labels))
        .expect_err("refused")
        .to_string();
    assert!(e.contains("bomb-images.gz (decompressed)"), "{e}");
    assert!(e.contains(&format!("over the limit of {limit}")), "{e}");
    assert!(e.contains("KILN_MAX_FILE_BYTES"), "{e}");
}

#[test]
fn cut_short_or_zero_normalisation_is_refused() {
    let model = small_model();
    for (field, value) in [
        ("/normalization/mean", serde_json::json!([0.5, 0.5])),
        (
            "/normalization/std",
            serde_json::json!([0.0, 0.0, 0.0, 0.0]),
        ),
    ] {
        let mut header = serde_json::to_value(&model.header).expect("json");
        *header.pointer_mut(field).expect("field") = value;
        let e = measured("bad normalisation", || {
            load_and_predict(&with_header(&header, &model.weights))
        })
        .expect_err("refused");
        let name = field.trim_start_matches('/').replace('/', ".");
        assert!(e.contains(&name), "{e}");
    }
    // The untampered model loads and predicts probabilities.
    let out = measured("good model", || {
        load_and_predict(&model.to_bytes().expect("bytes"))
    })
    .expect("loads");
    assert_eq!(out.len(), 6);
}

#[test]
fn csv_errors_count_lines_from_one_and_name_the_file() {
    let e = parse_table("a,b\n1,2\n\n3,x\n", true, "data.csv")
        .expect_err("bad cell")
        .to_string();
    assert!(e.contains("data.csv: line 4, column 2"), "{e}");
    let table = parse_table("a,y\n1,0\n2,-3\n", true, "data.csv").expect("numbers");
    let e = table
        .into_dataset(None, kiln::config::Task::Classification)
        .expect_err("bad label")
        .to_string();
    assert!(e.contains("data.csv: line 3, column 2"), "{e}");
}

#[test]
fn messages_quote_at_most_80_characters_of_their_input() {
    let huge = "x".repeat(200_000);
    let e = parse_table(&format!("a,b\n1,{huge}\n"), true, "data.csv")
        .expect_err("a huge cell that is not a number")
        .to_string();
    assert!(
        e.len() < 300 && e.contains("data.csv: line 2, column 2"),
        "{e}"
    );
    let table = parse_table(&format!("{huge},y\n1,0\n2,1\n"), true, "data.csv").expect("numbers");
    let column = kiln::config::LabelColumn::Name("z".repeat(200_000));
    let e = table
        .label_index(Some(&column))
        .expect_err("no such column")
        .to_string();
    assert!(e.len() < 400 && e.contains("no column named"), "{e}");
    let e = config_error(&format!(
        "{{\"training\": {{\"{}\": 1}}}}",
        "k".repeat(100_000)
    ));
    assert!(e.len() < 1000 && e.contains("unknown key"), "{e}");
}

#[test]
fn a_text_models_vocabulary_must_fit_its_input_shape() {
    let model = small_model();
    let mut header = serde_json::to_value(&model.header).expect("header json");
    header["vocabulary"] = serde_json::json!({
        "tokenizer": "word", "lowercase": true, "max_len": 10,
        "tokens": ["<pad>", "<unk>", "spam"], "class_names": ["a", "b", "c"]
    });
    let error = load_and_predict(&with_header(&header, &model.weights)).unwrap_err();
    assert!(
        error.contains("vocabulary.max_len") && error.contains("[4]"),
        "{error}"
    );
    header["input_shape"] = serde_json::json!([10]);
    header["normalization"] = serde_json::Value::Null;
    header["vocabulary"]["tokens"] = serde_json::json!(["<pad>"]);
    let error = load_and_predict(&with_header(&header, &model.weights)).unwrap_err();
    assert!(error.contains("vocabulary.tokens"), "{error}");
}
