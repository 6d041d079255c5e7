//! How a command ends: its output, its exit status, and its error.
//!
//! Exit status (README): 0 success, 1 the check failed (verification,
//! configuration), 2 usage or I/O error. A command returns
//! `Result<Verdict, E>`: a [`Verdict`] is a check that ran to the end (0 or
//! 1); an error is anything that stopped it (2), printed on stderr as
//! `mesh-audit <command>: <message>`.
//!
//! Errors are a `thiserror` enum per command and per shared reader (trail,
//! keys, output), not `anyhow` context strings: each failure a user can hit
//! is one variant, its message and what to do written once where it arises.

use crate::escape;
use std::fmt::Display;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The outcome of a check that ran to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every check held: exit status 0.
    Pass,
    /// A check failed, and the output says which: exit status 1.
    Fail,
}

impl Verdict {
    pub fn of(ok: bool) -> Verdict {
        if ok {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

/// The exit status of `command`'s result; an error is printed first.
pub fn exit(command: &str, result: Result<Verdict, impl Display>) -> ExitCode {
    match result {
        Ok(Verdict::Pass) => ExitCode::SUCCESS,
        Ok(Verdict::Fail) => ExitCode::from(1),
        // Messages name files and values read from them: shown escaped.
        Err(e) => {
            eprintln!("mesh-audit {command}: {}", escape::text(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

/// `hint` when `e` says a file does not exist, else nothing: the common
/// mistake gets its fix in the message.
pub fn if_missing(e: &io::Error, hint: &'static str) -> &'static str {
    if e.kind() == io::ErrorKind::NotFound {
        hint
    } else {
        ""
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write to stdout: {0}")]
    Stdout(io::Error),
    #[error("{}: {source} (-o names the file to write: check that its directory exists and is writable)", path.display())]
    File { path: PathBuf, source: io::Error },
}

/// Writes a command's output to `path`, or to stdout when there is none.
/// A reader that stops reading (`| head`) is not an error: the verdict
/// still sets the exit status.
pub fn write(text: &str, path: Option<&Path>) -> Result<(), OutputError> {
    match path {
        None => {
            let mut out = io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(OutputError::Stdout(e)),
                _ => Ok(()),
            }
        }
        Some(path) => std::fs::write(path, text).map_err(|source| OutputError::File {
            path: path.to_path_buf(),
            source,
        }),
    }
}
