//! `mesh-audit keygen`: an Ed25519 key pair for seals and its keyring line.

use crate::args::KeygenArgs;
use crate::status::{self, if_missing, OutputError, Verdict};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use mesh_audit::audit::hex;
use mesh_audit::deliver::seal::Signer;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why no key pair was made (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("pattern {0:?} is empty or has spaces: a pattern is a destination principal, exact or a prefix ending in `*` (spiffe://cluster.local/ns/shop/*)")]
    Pattern(String),
    #[error("no randomness from the operating system: {0}")]
    Randomness(getrandom::Error),
    #[error("cannot encode the key pair: {0}")]
    Encode(String),
    #[error("{}: already exists, and keygen never replaces a key: choose another --out, or move the old pair away first", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}{}", .path.display(), if_missing(.source, " (the directory --out names must exist)"))]
    Write { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Output(#[from] OutputError),
}

pub fn run(args: &KeygenArgs) -> Result<Verdict, KeygenError> {
    let line = write_pair(&args.out, &args.patterns)?;
    status::write(&format!("{line}\n"), None)?;
    Ok(Verdict::Pass)
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes PREFIX.key.pem and PREFIX.pub.pem; returns the keyring line.
fn write_pair(prefix: &Path, patterns: &[String]) -> Result<String, KeygenError> {
    if let Some(bad) = patterns
        .iter()
        .find(|p| p.trim().is_empty() || p.contains(char::is_whitespace))
    {
        return Err(KeygenError::Pattern(bad.clone()));
    }
    let key_path = with_suffix(prefix, ".key.pem");
    let pub_path = with_suffix(prefix, ".pub.pem");
    // Both are checked first, so an existing public key never leaves a
    // private key without its pair.
    if let Some(existing) = [&key_path, &pub_path].into_iter().find(|p| p.exists()) {
        return Err(KeygenError::Exists(existing.clone()));
    }
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(KeygenError::Randomness)?;
    let signer = Signer::from_seed(&seed);
    let private = signer.to_pkcs8_pem().map_err(KeygenError::Encode)?;
    let public = signer
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeygenError::Encode(e.to_string()))?;
    create(&key_path, private.as_bytes(), 0o600)?;
    create(&pub_path, public.as_bytes(), 0o644)?;
    let mut line = format!(
        "{} {}",
        signer.key_id(),
        hex(signer.verifying_key().as_bytes())
    );
    for p in patterns {
        line.push(' ');
        line.push_str(p);
    }
    Ok(line)
}

/// Creates `path` with `mode`, refusing to replace an existing file.
fn create(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeygenError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let failed = |source: io::Error| match source.kind() {
        io::ErrorKind::AlreadyExists => KeygenError::Exists(path.to_path_buf()),
        _ => KeygenError::Write {
            path: path.to_path_buf(),
            source,
        },
    };
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(failed)
}
