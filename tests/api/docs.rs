//! The documentation cannot drift from the code: every variable the config
//! reads is in the README table and in `.env`, and the Dockerfile keeps its
//! promises (multi-stage, non-root, a healthcheck through the binary).
//! (No Docker engine runs here, so the image itself is not built by the tests.)

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every upper-case string literal in the config source: the variables it reads.
fn config_variables() -> Vec<String> {
    let source = read("src/config.rs");
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
fn every_configuration_variable_is_documented_in_the_readme_and_env_file() {
    let vars = config_variables();
    assert!(vars.len() >= 19, "found only {vars:?}");
    assert!(vars.contains(&"TURN_SECRET".to_owned()) && vars.contains(&"PORT".to_owned()));
    let (readme, env) = (read("README.md"), read(".env"));
    for var in &vars {
        assert!(readme.contains(&format!("| `{var}`")), "{var} missing from the README configuration table");
        assert!(env.lines().any(|l| l.starts_with(&format!("{var}="))), "{var} missing from .env");
    }
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
