//! One-off containers of a recipe's service, started in the background
//! (`compose run -d`) and read while they run or once they exit; the
//! stack's teardown removes any left behind.

use super::{docker, docker_ok, random_hex, text, Stack};
use std::time::{Duration, Instant};

impl Stack {
    /// Starts `script` in a one-off container of `service` in the
    /// background; [`Background::wait`] collects its output.
    pub fn start(&self, service: &str, script: &str) -> Background {
        let name = format!(
            "{}-{service}-{}",
            self.project,
            random_hex()[..8].to_owned()
        );
        self.compose_ok(&[
            "run",
            "-d",
            "--no-deps",
            "--name",
            &name,
            "--entrypoint",
            "bash",
            service,
            "-c",
            script,
        ]);
        Background { name }
    }
}

pub struct Background {
    name: String,
}

impl Background {
    /// Waits (bounded) until the container has printed `lines` lines, which
    /// it returns; it keeps running.
    pub fn output_when(&self, lines: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = docker(&["logs", &self.name]);
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            if stdout.lines().count() >= lines {
                return stdout;
            }
            let state = docker_ok(&["inspect", "-f", "{{.State.Status}}", &self.name]);
            assert!(
                state == "running" && Instant::now() < deadline,
                "{} is {state} after {} of {lines} lines:\n{}",
                self.name,
                stdout.lines().count(),
                text(&out)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits (bounded) for the container to exit; its output.
    pub fn wait(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let state = docker_ok(&["inspect", "-f", "{{.State.Status}}", &self.name]);
            if state == "exited" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} still {state} after {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let code = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &self.name]);
        let out = docker(&["logs", &self.name]);
        assert_eq!(code, "0", "{} failed:\n{}", self.name, text(&out));
        let _ = docker(&["rm", "-f", &self.name]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}
