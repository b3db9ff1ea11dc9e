//! No two modules of this crate import each other, directly or through others (issue 18
//! point 4): the modules' `use crate::…`, `use super::…` and inline `crate::…`/`super::…`
//! paths (outside their tests), with each parent's `mod` declarations, form a graph without
//! cycles. Shared types go to leaf modules instead (`flash/flash_target.rs`,
//! `steps/context.rs`, `durable.rs`, …).

use std::collections::BTreeMap;
use std::path::Path;

/// Every module's code (before its `#[cfg(test)]`, comments dropped), by path (`steps::flash`).
fn modules(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(&path, root, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap().with_extension("");
        let rel = rel.to_string_lossy().replace('/', "::");
        let name = match rel.as_str() {
            "main" => continue,
            "lib" => String::new(),
            other => other.strip_suffix("::mod").unwrap_or(other).to_string(),
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let code: Vec<&str> = code.lines().map(|l| l.split("//").next().unwrap_or("")).collect();
        out.insert(name, code.join("\n"));
    }
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}::{path}"),
    }
}

/// The paths a use tree names: `super::{a::{b, c}, d as e}` gives `super::a::b`, `super::a::c`,
/// `super::d`.
fn flatten(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    match (tree.find('{'), tree.rfind('}')) {
        (Some(open), Some(close)) if open < close => {
            let prefix = join(prefix, tree[..open].trim_end_matches("::"));
            let mut depth = 0;
            let mut start = open + 1;
            for (i, c) in tree.char_indices().take(close).skip(open + 1) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        flatten(&prefix, &tree[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            flatten(&prefix, &tree[start..close], out);
        }
        _ => {
            let path = tree.split(" as ").next().unwrap_or("").trim();
            let path = path.strip_suffix("::self").unwrap_or(path);
            if !path.is_empty() && path != "self" && path != "*" {
                out.push(join(prefix, path.trim_end_matches("::*")));
            }
        }
    }
}

/// The module of `modules` that `path`, written in module `current`, names (the deepest one).
fn resolve(modules: &BTreeMap<String, String>, current: &str, path: &str) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").map(str::trim).collect();
    let mut base: Vec<&str> =
        if current.is_empty() { Vec::new() } else { current.split("::").collect() };
    match segments.first().copied() {
        Some("crate") => {
            base.clear();
            segments.remove(0);
        }
        Some("self") => {
            segments.remove(0);
        }
        Some("super") => {
            while segments.first() == Some(&"super") {
                base.pop();
                segments.remove(0);
            }
        }
        Some(first) if modules.contains_key(&join(current, first)) => {}
        _ => return None,
    }
    let mut best = None;
    for i in 0..=segments.len() {
        let candidate = join(&base.join("::"), &segments[..i].join("::"));
        if modules.contains_key(&candidate) {
            best = Some(candidate);
        }
    }
    best
}

/// Every `crate::…`/`super::…` path written outside a `use` line.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for keyword in ["crate::", "super::"] {
        for (at, _) in code.match_indices(keyword) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[at..];
            let end = rest
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
                .map_or(rest.len(), |(i, _)| i);
            let path = rest[..end].trim_end_matches(':');
            if path != "crate" && path != "super" {
                out.push(path.to_string());
            }
        }
    }
    out
}

#[test]
fn no_two_modules_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = BTreeMap::new();
    modules(&root, &root, &mut all);
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, code) in &all {
        let mut paths = inline_paths(code);
        for statement in code.split(';') {
            let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
            let found = statement
                .match_indices("use ")
                .find(|(at, _)| *at == 0 || statement[..*at].ends_with(' '));
            if let Some((at, _)) = found {
                flatten("", &statement[at + 4..], &mut paths);
            }
        }
        let mut to: Vec<String> =
            paths.iter().filter_map(|p| resolve(&all, name, p)).filter(|t| t != name).collect();
        if !name.is_empty() {
            let parent = name.rsplit_once("::").map_or("", |(p, _)| p);
            edges.entry(parent.to_string()).or_default().push(name.clone());
        }
        to.sort();
        to.dedup();
        edges.entry(name.clone()).or_default().extend(to);
    }
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            return Some(path[at..].iter().cloned().chain([node.to_string()]).collect());
        }
        if done.iter().any(|d| d == node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.push(node.to_string());
        None
    }
    let (mut path, mut done) = (Vec::new(), Vec::new());
    for name in all.keys() {
        if let Some(cycle) = visit(name, &edges, &mut path, &mut done) {
            let shown: Vec<&str> =
                cycle.iter().map(|m| if m.is_empty() { "crate" } else { m.as_str() }).collect();
            panic!(
                "modules import each other: {}; move what they share into a leaf module",
                shown.join(" -> ")
            );
        }
    }
    // The check sees the modules it guards (a walk that found nothing would pass).
    for expected in ["steps::flash", "flash::flash_target", "steps::context", "net::warning"] {
        assert!(all.contains_key(expected), "{expected} not found under {}", root.display());
    }
}
