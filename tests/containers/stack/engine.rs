//! The machine's container engine as the tests drive it: whether it
//! answers, its Compose tool, the images `make images` built, and `docker`
//! commands with their output.

use super::repo_root;
use std::io::Write;
use std::process::{Command, Output};

/// Whether the container engine answers. Under `CI=true` a missing engine
/// fails the test; elsewhere the test prints what it did not run and returns.
pub fn engine_or_notice(test: &str) -> bool {
    let answers = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if answers {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: no container engine answers `docker info`; CI needs one"
    );
    // Straight to stderr: the test harness captures eprintln!, and this
    // must be seen in a passing run.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** NOT RUN: {test}: no container engine answers `docker info`. \
         The container suite (compose recipe, faults across networks, two hops) \
         did not run. ***\n"
    );
    false
}

/// The Compose tool: v2's plugin if the client has it, else v1.
pub(super) fn compose_tool() -> Vec<&'static str> {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if v2 {
        vec!["docker", "compose"]
    } else {
        vec!["docker-compose"]
    }
}

/// The tags `make images` wrote into target/images/images.env.
pub(super) fn local_images() -> Vec<(String, String)> {
    let env = repo_root().join("target/images/images.env");
    let text = std::fs::read_to_string(&env)
        .unwrap_or_else(|e| panic!("{}: {e}: run `make images`", env.display()));
    let images: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(images.len(), 3, "{}: {images:?}", env.display());
    for (_, tag) in &images {
        let present = docker(&["image", "inspect", tag]).status.success();
        assert!(
            present,
            "image {tag} is not in the engine: run `make images`"
        );
    }
    images
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

/// `docker ARGS`, failing the test with its output unless it succeeds.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
