//! `mesh-audit keygen`: an Ed25519 key pair for seals and its keyring line.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use mesh_audit::audit::hex;
use mesh_audit::deliver::seal::Signer;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(prefix: &Path, patterns: &[String]) -> ExitCode {
    match write_pair(prefix, patterns) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mesh-audit keygen: {e}");
            ExitCode::from(2)
        }
    }
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes PREFIX.key.pem and PREFIX.pub.pem; returns the keyring line.
fn write_pair(prefix: &Path, patterns: &[String]) -> Result<String, String> {
    if let Some(bad) = patterns
        .iter()
        .find(|p| p.trim().is_empty() || p.contains(char::is_whitespace))
    {
        return Err(format!("pattern {bad:?} is empty or has spaces"));
    }
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(|e| format!("no randomness: {e}"))?;
    let signer = Signer::from_seed(&seed);
    let private = signer.to_pkcs8_pem()?;
    let public = signer
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the public key: {e}"))?;
    let key_path = with_suffix(prefix, ".key.pem");
    let pub_path = with_suffix(prefix, ".pub.pem");
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
fn create(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}
