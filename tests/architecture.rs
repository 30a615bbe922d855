//! The architecture, checked: data flows one way (transport -> core ->
//! domain, store; cluster below core), and the layout says so.
//!
//! - `domain` names no I/O crate and nothing outside itself;
//! - `store` reaches nothing of `core`, `transport`, `cluster`, `state` or `server`;
//! - `cluster` reaches nothing of `core`, `transport`, `state` or `server`;
//! - `core` reaches nothing of `transport`, `state` or `server`, and no
//!   socket.io or HTTP crate: it is protocol-neutral;
//! - `state.rs` reaches nothing of `transport`;
//! - a feature folder of `transport` never reaches another feature folder;
//!   the shared folders reach none, and only those below them (`wire` none,
//!   `conn` only `wire`, `http` both);
//! - imports name whole paths (no `crate::{...}`), so the checks see them;
//! - every source file opens with `//!` saying what it owns, and has at most
//!   300 lines;
//! - the code tour (`docs/architecture.md`) names every folder of `src/`.
//!
//! Only code counts, not comments: a doc comment may name what a module must
//! not import.

use std::path::{Path, PathBuf};

/// Crates that do I/O (or speak a protocol): none of them in `domain`.
const IO_CRATES: [&str; 14] = [
    "tokio",
    "fred",
    "axum",
    "socketioxide",
    "engineioxide",
    "tower",
    "tower_http",
    "hyper",
    "http",
    "reqwest",
    "tracing",
    "dotenvy",
    "std::fs",
    "std::io",
];

/// Crates that speak socket.io or HTTP: none of them in `core`.
const PROTOCOL_CRATES: [&str; 7] =
    ["socketioxide", "socketioxide_core", "socketioxide_parser_common", "engineioxide", "axum", "tower_http", "http"];

/// The feature folders of `transport`.
const FEATURES: [&str; 6] = ["rooms", "dashboard", "devices", "mesh", "workers", "ywebrtc"];
/// The shared folders of `transport`, lowest first: each may name only those before it.
const SHARED: [&str; 3] = ["wire", "conn", "http"];
/// The most lines a source file may have.
const MAX_LINES: usize = 300;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its path relative to `src/`.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(src()).unwrap().to_string_lossy().replace('\\', "/");
            out.push((relative, std::fs::read_to_string(&path).unwrap()));
        }
    }
    out.sort();
    out
}

/// The code of a file: its lines without comments.
fn code(source: &str) -> String {
    source
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `code` names `path` as a path (`path::...`, `use path;`, `path {`), not as part of a longer name.
fn names(code: &str, path: &str) -> bool {
    code.match_indices(path).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + path.len()..];
        let starts = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        starts && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" {"))
    })
}

/// What files under `folder` (relative to `src/`) name any of `forbidden`: `file: path` lines.
fn violations(folder: &str, forbidden: &[String]) -> Vec<String> {
    let files = sources(&src()).into_iter().filter(|(path, _)| path.starts_with(folder));
    let mut found = Vec::new();
    for (path, source) in files {
        let code = code(&source);
        for name in forbidden.iter().filter(|name| names(&code, name)) {
            found.push(format!("{path}: {name}"));
        }
    }
    found
}

fn crate_paths(modules: &[&str]) -> Vec<String> {
    modules.iter().map(|m| format!("crate::{m}")).collect()
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn domain_names_no_io_crate_and_nothing_outside_itself() {
    let mut forbidden = owned(&IO_CRATES);
    forbidden.extend(crate_paths(&["store", "core", "transport", "cluster", "state", "server", "config", "metrics"]));
    assert_eq!(violations("domain/", &forbidden), Vec::<String>::new());
}

#[test]
fn store_reaches_nothing_above_it() {
    let forbidden = crate_paths(&["core", "transport", "cluster", "state", "server"]);
    assert_eq!(violations("store/", &forbidden), Vec::<String>::new());
}

#[test]
fn cluster_reaches_neither_the_core_nor_the_transport() {
    let forbidden = crate_paths(&["core", "transport", "state", "server"]);
    assert_eq!(violations("cluster/", &forbidden), Vec::<String>::new());
}

#[test]
fn the_core_knows_no_transport_and_no_protocol() {
    let mut forbidden = crate_paths(&["transport", "state", "server"]);
    forbidden.extend(owned(&PROTOCOL_CRATES));
    assert_eq!(violations("core/", &forbidden), Vec::<String>::new());
}

#[test]
fn state_reaches_nothing_of_the_transport() {
    assert_eq!(violations("state.rs", &crate_paths(&["transport", "server"])), Vec::<String>::new());
}

/// What each folder of `transport` may not name: a feature folder no other
/// feature folder; the shared folders no feature folder, and each none of the
/// shared folders above it (`wire` is the lowest, then `conn`, then `http`).
fn transport_forbidden(folder: &str) -> Vec<String> {
    let mut forbidden = Vec::new();
    if FEATURES.contains(&folder) {
        for other in FEATURES.iter().filter(|f| **f != folder) {
            forbidden.push(format!("crate::transport::{other}"));
            // `super::super::<feature>` from a folder's file reaches a sibling folder.
            forbidden.push(format!("super::super::{other}"));
        }
    } else {
        let above = SHARED.iter().position(|s| *s == folder).expect("a shared folder") + 1;
        for other in FEATURES.iter().chain(&SHARED[above..]) {
            forbidden.push(format!("crate::transport::{other}"));
            forbidden.push(format!("super::super::{other}"));
        }
    }
    forbidden
}

#[test]
fn transport_folders_import_only_below_them() {
    let mut found = Vec::new();
    for folder in FEATURES.iter().chain(&SHARED) {
        found.extend(violations(&format!("transport/{folder}/"), &transport_forbidden(folder)));
    }
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn imports_name_whole_paths() {
    // `use crate::{a::b, c}` would hide its paths from the checks above.
    let found: Vec<String> = sources(&src())
        .into_iter()
        .filter(|(_, source)| code(source).contains("crate::{"))
        .map(|(path, _)| path)
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn every_source_file_says_what_it_owns_and_stays_under_300_lines() {
    let mut found = Vec::new();
    for (path, source) in sources(&src()) {
        if !source.trim_start().starts_with("//!") {
            found.push(format!("{path}: no //! module documentation"));
        }
        let lines = source.lines().count();
        if lines > MAX_LINES {
            found.push(format!("{path}: {lines} lines"));
        }
    }
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn the_code_tour_names_every_folder_of_src() {
    let tour = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md")).unwrap();
    let mut folders: Vec<String> = Vec::new();
    let mut pending = vec![src()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let relative = path.strip_prefix(src().parent().unwrap()).unwrap().to_string_lossy().replace('\\', "/");
                folders.push(format!("{relative}/"));
                pending.push(path);
            }
        }
    }
    folders.sort();
    let missing: Vec<_> = folders.iter().filter(|f| !tour.contains(&format!("`{f}`"))).collect();
    assert!(missing.is_empty(), "folders missing from the code tour in docs/architecture.md: {missing:?}");
}

#[test]
fn the_checks_catch_what_they_forbid() {
    let code =
        code("//! may not name crate::transport\nuse crate::transport::rooms::wire;\nlet x = tokio::spawn(f);\n");
    assert!(names(&code, "crate::transport") && names(&code, "tokio"));
    assert!(!names(&code, "crate::core"), "a doc comment is not code");
    assert!(!names("use my_tokio::x;", "tokio") && !names("use crate::httpx::y;", "http"), "whole names only");
    assert!(names("use http::HeaderValue;", "http") && names("use std::fs;", "std::fs"));
    assert!(!names("use crate::transport::conn::x;", "crate::transport::rooms"));
    let rooms = transport_forbidden("rooms");
    assert!(rooms.iter().any(|p| names("use crate::transport::mesh::X;", p)), "a feature naming another");
    assert!(!rooms.iter().any(|p| names("use crate::transport::conn::X;", p)), "a feature naming a shared folder");
    let wire = transport_forbidden("wire");
    assert!(wire.iter().any(|p| names("use crate::transport::conn::auth::AuthError;", p)), "wire naming conn");
    assert!(wire.iter().any(|p| names("use super::super::http::X;", p)), "wire naming http");
    assert!(transport_forbidden("conn").iter().any(|p| names("use crate::transport::http::guard;", p)));
    assert!(!transport_forbidden("http").iter().any(|p| names("use crate::transport::conn::auth;", p)));
}
