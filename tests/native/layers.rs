//! The server's layers keep their direction: the HTTP layer may use the worker and the fleet,
//! the worker may use the fleet, and the fleet (registry, leases, object store) uses neither —
//! read from the `crate::serve::…` paths each file names.

use std::path::Path;

/// The modules of each layer, as `crate::serve::<module>` names them.
fn modules_of(layer: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/serve")
        .join(layer);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let module = name.strip_suffix(".rs")?;
            (module != "mod").then(|| module.to_string())
        })
        .collect()
}

/// Every `crate::serve::<module>` a layer's files name, with the file naming it.
fn uses_of(layer: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/serve")
        .join(layer);
    let mut uses = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices("crate::serve::") {
            let rest = &text[at + "crate::serve::".len()..];
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            uses.push((path.display().to_string(), module));
        }
    }
    uses
}

#[test]
fn the_worker_and_the_fleet_never_use_the_http_layer() {
    let http = modules_of("http");
    let worker = modules_of("worker");
    assert!(http.contains(&"jobs_api".to_string()) && worker.contains(&"runner".to_string()));
    for (file, module) in uses_of("worker").into_iter().chain(uses_of("fleet")) {
        assert!(
            !http.contains(&module),
            "{file} uses the HTTP layer's `{module}`"
        );
    }
    for (file, module) in uses_of("fleet") {
        assert!(
            !worker.contains(&module),
            "{file} uses the worker's `{module}`"
        );
    }
}
