//! The library's folders import each other in one direction only: the `crate::<module>` paths
//! each top-level module of `crate/src` names form no circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `path` (or `path` itself).
fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path).expect("readable folder") {
        found.extend(files(&entry.expect("entry").path()));
    }
    found.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    found
}

/// Top-level module → the top-level modules its files name as `crate::<module>`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("crate/src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a module name")
            .to_string();
        if name == "lib" {
            continue;
        }
        let mut uses = BTreeSet::new();
        for file in files(&path) {
            let text = std::fs::read_to_string(&file).expect("readable source");
            for (at, _) in text.match_indices("crate::") {
                let module: String = text[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let is_module =
                    src.join(format!("{module}.rs")).exists() || src.join(&module).is_dir();
                if is_module && module != name {
                    uses.insert(module);
                }
            }
        }
        graph.insert(name, uses);
    }
    graph
}

/// A circle through `from`, if the graph has one (depth-first search).
fn circle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|m| m == from) {
        let mut found = path[start..].to_vec();
        found.push(from.to_string());
        return Some(found);
    }
    path.push(from.to_string());
    for next in graph.get(from).into_iter().flatten() {
        if let Some(found) = circle(graph, next, path) {
            return Some(found);
        }
    }
    path.pop();
    None
}

#[test]
fn the_library_folders_import_each_other_without_circles() {
    let graph = imports();
    assert!(graph.contains_key("layers") && graph.contains_key("model"));
    assert!(
        graph["model"].contains("layers"),
        "the scan sees imports: {graph:?}"
    );
    for module in graph.keys() {
        if let Some(found) = circle(&graph, module, &mut Vec::new()) {
            panic!("an import circle: {}", found.join(" → "));
        }
    }
}
