//! The documentation cannot drift from the code: every variable the config
//! reads is in the table of `docs/configuration.md` and in `.env`, every
//! relative link in the README and `docs/` points at a file of the repository,
//! and the Dockerfile keeps its promises (multi-stage, non-root, a healthcheck
//! through the binary). (No Docker engine runs here, so the image itself is
//! not built by the tests.)

use std::path::{Path, PathBuf};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every upper-case string literal in the config sources (not their tests):
/// the variables they read.
fn config_variables() -> Vec<String> {
    let source = ["src/config/mod.rs", "src/config/env.rs", "src/config/ywebrtc.rs"].map(read).join("\n");
    let mut vars: Vec<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|lit| lit.len() >= 4 && lit.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    vars.sort();
    vars.dedup();
    vars
}

#[test]
fn every_configuration_variable_is_documented_in_docs_configuration_md_and_env_file() {
    let vars = config_variables();
    assert!(vars.len() >= 19, "found only {vars:?}");
    assert!(vars.contains(&"TURN_SECRET".to_owned()) && vars.contains(&"PORT".to_owned()));
    let (table, env) = (read("docs/configuration.md"), read(".env"));
    for var in &vars {
        assert!(table.contains(&format!("| `{var}`")), "{var} missing from the table in docs/configuration.md");
        assert!(env.lines().any(|l| l.starts_with(&format!("{var}="))), "{var} missing from .env");
    }
}

/// `README.md` and every `.md` file under `docs/`.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    let mut found = vec![root.join("README.md")];
    walk(&root.join("docs"), &mut found);
    found.sort();
    found
}

/// The targets of a markdown text's inline links and images (`[x](target)`)
/// and reference definitions (`[x]: target`), outside fenced code blocks.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                targets.push(rest[..end].to_owned());
            }
        }
        if let Some((label, target)) = line.trim_start().split_once("]: ")
            && label.starts_with('[')
        {
            targets.push(target.trim().to_owned());
        }
    }
    // A target with a space is not a link (`](` inside prose or code).
    targets.retain(|t| !t.is_empty() && !t.contains(char::is_whitespace));
    targets
}

#[test]
fn every_relative_link_in_the_readme_and_docs_points_at_a_file_of_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize().unwrap();
    let files = markdown_files(&root);
    assert!(files.len() >= 5, "found only {files:?}");
    let (mut checked, mut broken) = (0, Vec::new());
    for file in &files {
        let dir = file.parent().unwrap();
        for target in link_targets(&std::fs::read_to_string(file).unwrap()) {
            let external = ["http://", "https://", "mailto:"].iter().any(|scheme| target.starts_with(scheme));
            let path = target.split('#').next().unwrap_or_default();
            if external || path.is_empty() {
                continue;
            }
            checked += 1;
            // Inside the repository: a clone has nothing beside it.
            let inside = dir.join(path).canonicalize().is_ok_and(|found| found.starts_with(&root));
            if !inside {
                broken.push(format!("{}: {target}", file.strip_prefix(&root).unwrap_or(file).display()));
            }
        }
    }
    assert!(checked >= 20, "found only {checked} relative links: is the link parser broken?");
    assert!(broken.is_empty(), "links to no file of the repository:\n{}", broken.join("\n"));
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_with_a_healthcheck() {
    let dockerfile = read("Dockerfile");
    let stages = dockerfile.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage build");
    let user = dockerfile.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(user.trim() != "root" && user.trim() != "0");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"healthcheck\""));
}
