//! The documentation cannot drift from the code: every variable the config
//! reads is in the README table and in `.env`, and the Dockerfile keeps its
//! promises (multi-stage, non-root, a healthcheck through the binary).
//! (No Docker engine runs here, so the image itself is not built by the tests.)

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Variable names passed to the config's parsing helpers: `env.x("NAME", ...)`.
fn config_variables() -> Vec<String> {
    let source = read("src/config.rs");
    let mut vars: Vec<String> = source
        .split("env.")
        .skip(1)
        .filter_map(|rest| rest.split_once("(\"").map(|(_, after)| after))
        .filter_map(|after| after.split_once('"').map(|(name, _)| name.to_owned()))
        .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    vars.sort();
    vars.dedup();
    vars
}

#[test]
fn every_configuration_variable_is_documented_in_the_readme_and_env_file() {
    let vars = config_variables();
    assert!(vars.len() >= 10, "found only {vars:?}");
    let (readme, env) = (read("README.md"), read(".env"));
    for var in &vars {
        assert!(
            readme.contains(&format!("| `{var}`")),
            "{var} missing from the README configuration table"
        );
        assert!(
            env.lines().any(|l| l.starts_with(&format!("{var}="))),
            "{var} missing from .env"
        );
    }
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_with_a_healthcheck() {
    let dockerfile = read("Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "multi-stage build");
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(user.trim() != "root" && user.trim() != "0");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"healthcheck\""));
}
