//! The binary's module layering, read from its sources: imports point down from
//! `node.rs`, which builds and wires; no module imports it back, and no CI role (nor
//! the API) reaches into another role. `cargo test -p eventide-node --test layering`
//! prints the whole graph when a rule breaks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The roles: each gets its handles from `node.rs` and knows no other role.
const ROLES: [&str; 5] = ["cluster", "observer", "dispatcher", "statuses", "runner"];

/// Every `(from, to)` pair of top-level modules of `node/src` where `from` names
/// `crate::to` outside its tests.
fn edges() -> BTreeSet<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&root)
        .expect("node/src is readable")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".rs").unwrap_or(&name).to_owned())
        })
        .collect();
    let mut edges = BTreeSet::new();
    for file in rust_files(&root) {
        let relative = file.strip_prefix(&root).expect("under node/src");
        let from = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.strip_suffix(".rs").unwrap_or(c).to_owned())
            .expect("a file name");
        if relative.to_string_lossy().ends_with("_test.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source is utf-8");
        // Unit tests sit at the end of a file; what they import is not layering.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(&text);
        for to in imported_modules(code) {
            if to != from && modules.contains(&to) {
                edges.insert((from.clone(), to));
            }
        }
    }
    edges
}

/// The first path segment after each `crate::`, including every name of a
/// `crate::{a, b::c}` group.
fn imported_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (index, _) in code.match_indices("crate::") {
        let rest = &code[index + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let head: String =
                    part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !head.is_empty() && head != "self" {
                    names.push(head);
                }
            }
        } else {
            let head: String =
                rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            names.push(head);
        }
    }
    names
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn graph(edges: &BTreeSet<(String, String)>) -> String {
    edges.iter().map(|(from, to)| format!("  {from} -> {to}\n")).collect()
}

#[test]
fn nothing_imports_the_node_module() {
    let edges = edges();
    let back: Vec<_> = edges.iter().filter(|(_, to)| to == "node").collect();
    assert!(back.is_empty(), "imports of crate::node: {back:?}\n{}", graph(&edges));
}

#[test]
fn no_role_and_not_the_api_imports_a_role() {
    let edges = edges();
    let sideways: Vec<_> = edges
        .iter()
        .filter(|(from, to)| {
            (ROLES.contains(&from.as_str()) || from == "api") && ROLES.contains(&to.as_str())
        })
        .collect();
    assert!(sideways.is_empty(), "a role imports another: {sideways:?}\n{}", graph(&edges));
}

#[test]
fn the_graph_is_read_from_the_sources() {
    // The rules above would pass on an empty graph; make sure it is not.
    let edges = edges();
    for expected in [("node", "runner"), ("runner", "raft_view"), ("api", "raft_view")] {
        let edge = (expected.0.to_owned(), expected.1.to_owned());
        assert!(edges.contains(&edge), "missing {expected:?} in\n{}", graph(&edges));
    }
    assert_eq!(
        imported_modules("use crate::{a::B, self, c};\nlet x = crate::d::e();"),
        ["a", "c", "d"]
    );
}
