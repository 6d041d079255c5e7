//! Signed digests of the trail (CloudTrail-style, SPEC §5): every
//! `--digest-secs` the sink writes `PATH.digests/NNNNNNNN-<UTC>.json`, naming
//! the previous digest's SHA-256, every trail file with its size and SHA-256
//! (of the uncompressed content: a segment verifies the same once gzipped),
//! and per emitter the last seq and its record's SHA-256; signed by the sink
//! (Ed25519, `sig` last, over the file without its `,"sig":"…"` member).
//!
//! `verify --digests DIR --sink-key PUB` checks the chain of digests and,
//! against the newest, that no listed file was edited, truncated or deleted
//! and that no emitter lost records the digest covered.

use crate::escape::text as escape;
use crate::keys::unhex;
use crate::lines::list_segments;
use crate::lines::{for_each_line, open_plain, TrailError};
use ed25519_dalek::{Signature, VerifyingKey};
use mesh_audit::audit::hex;
use mesh_audit::deliver::seal::Signer;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

const SIG_MEMBER: &str = ",\"sig\":\"";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EmitterEntry {
    pub emitter: String,
    pub last_seq: u64,
    pub last_sha256: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    pub kind: String,
    pub seq: u64,
    pub ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub key_id: String,
    pub files: Vec<FileEntry>,
    pub emitters: Vec<EmitterEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

/// The digest's exact bytes, signed.
pub fn encode(d: &Digest, signer: &Signer) -> Vec<u8> {
    let mut unsigned = d.clone();
    unsigned.sig = None;
    let mut bytes = serde_json::to_vec(&unsigned).unwrap_or_default();
    let sig = signer.sign(&bytes);
    bytes.pop();
    bytes.extend_from_slice(SIG_MEMBER.as_bytes());
    bytes.extend_from_slice(hex(&sig).as_bytes());
    bytes.extend_from_slice(b"\"}\n");
    bytes
}

/// Parses a digest file and checks its signature.
fn decode(bytes: &[u8], key: &VerifyingKey) -> Result<Digest, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "not UTF-8".to_string())?
        .trim_end();
    let d: Digest = serde_json::from_str(text).map_err(|e| format!("not a digest: {e}"))?;
    let at = text.rfind(SIG_MEMBER).ok_or("has no signature")?;
    let message = format!("{}}}", &text[..at]);
    let sig = unhex(d.sig.as_deref().unwrap_or(""))
        .and_then(|s| <[u8; 64]>::try_from(s).ok())
        .ok_or("signature is not 128 hex digits")?;
    key.verify_strict(message.as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| "signature does not verify with --sink-key".to_string())?;
    if d.kind != "digest" {
        return Err("not a digest".into());
    }
    Ok(d)
}

pub fn digest_file_index(name: &str) -> Option<u64> {
    let (index, rest) = name.split_once('-')?;
    (index.len() == 8 && rest.ends_with(".json"))
        .then(|| index.parse().ok())
        .flatten()
}

/// The digest files in `dir` (`NNNNNNNN-<UTC>.json`), by index.
pub fn list_digests(dir: &Path) -> io::Result<Vec<(u64, String)>> {
    let mut names: Vec<(u64, String)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            digest_file_index(&name).map(|i| (i, name))
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Why the digests could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum DigestsError {
    #[error("--digests {}: {source}{}", .dir.display(), crate::status::if_missing(.source, " (the sink writes PATH.digests/ when it runs with --digest-key)"))]
    ReadDir { dir: PathBuf, source: io::Error },
    #[error("--digests {}: no digest files (NNNNNNNN-<UTC>.json): give the sink's PATH.digests/ directory; the sink writes the first digest --digest-secs after it starts", .dir.display())]
    Empty { dir: PathBuf },
    #[error("{}: {source}", .path.display())]
    ReadDigest { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Trail(#[from] TrailError),
}

/// What checking the digests found.
#[derive(Serialize, Debug, Default)]
pub struct Outcome {
    pub ok: bool,
    pub digests: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_sha256: Option<String>,
    pub problems: Vec<String>,
}

pub fn verify(trail: &Path, dir: &Path, key: &VerifyingKey) -> Result<Outcome, DigestsError> {
    let names = list_digests(dir).map_err(|source| DigestsError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut out = Outcome::default();
    let mut newest: Option<(Digest, String)> = None;
    for (index, name) in &names {
        let path = dir.join(name);
        let bytes =
            std::fs::read(&path).map_err(|source| DigestsError::ReadDigest { path, source })?;
        let d = match decode(&bytes, key) {
            Ok(d) => d,
            Err(e) => {
                out.problems.push(format!("digest {}: {e}", escape(name)));
                continue;
            }
        };
        if d.seq != *index {
            out.problems.push(format!(
                "digest {}: its seq is {}, its name says {index}",
                escape(name),
                d.seq
            ));
        }
        match &newest {
            None if d.seq != 1 => out.problems.push(format!(
                "digests 1..{} are missing: the chain starts at {}",
                d.seq - 1,
                escape(name)
            )),
            Some((prev, prev_sha)) => {
                if d.seq != prev.seq + 1 {
                    out.problems.push(format!(
                        "digests {}..{} are missing from the chain",
                        prev.seq + 1,
                        d.seq.saturating_sub(1)
                    ));
                } else if d.previous.as_deref() != Some(prev_sha.as_str()) {
                    out.problems.push(format!(
                        "digest {}: does not name digest {} as its previous one (replaced?)",
                        d.seq, prev.seq
                    ));
                }
            }
            None => {}
        }
        out.digests += 1;
        newest = Some((d, hex(&Sha256::digest(&bytes))));
    }
    let Some((d, sha)) = newest else {
        if names.is_empty() {
            return Err(DigestsError::Empty {
                dir: dir.to_path_buf(),
            });
        }
        out.problems
            .push("no digest verifies: nothing of the trail is covered".into());
        return Ok(out);
    };
    out.newest_seq = Some(d.seq);
    out.newest_ts = Some(d.ts.clone());
    out.newest_sha256 = Some(sha);
    check_files(trail, &d, &mut out.problems);
    check_emitters(trail, &d, &mut out.problems)?;
    out.ok = out.problems.is_empty();
    Ok(out)
}

fn check_files(trail: &Path, d: &Digest, problems: &mut Vec<String>) {
    let present: Vec<String> = if trail.is_dir() {
        list_segments(trail)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    } else {
        Vec::new()
    };
    for f in &d.files {
        let path = if trail.is_dir() {
            match present
                .iter()
                .find(|n| **n == f.name || **n == format!("{}.gz", f.name))
            {
                Some(n) => trail.join(n),
                None => {
                    problems.push(format!(
                        "file {}: listed by digest {} ({} bytes) is deleted",
                        escape(&f.name),
                        d.seq,
                        f.size
                    ));
                    continue;
                }
            }
        } else {
            trail.to_path_buf()
        };
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        let result = open_plain(&path).and_then(|r| {
            let mut limited = r.take(f.size);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = limited.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buf[..n]);
                read += n as u64;
            }
        });
        if let Err(e) = result {
            problems.push(format!("file {}: cannot be read: {e}", escape(&f.name)));
        } else if read < f.size {
            problems.push(format!(
                "file {}: truncated: {read} bytes, digest {} covered {}",
                escape(&f.name),
                d.seq,
                f.size
            ));
        } else if hex(&hasher.finalize()) != f.sha256 {
            problems.push(format!(
                "file {}: edited: its first {} bytes differ from digest {}",
                escape(&f.name),
                f.size,
                d.seq
            ));
        }
    }
}

fn check_emitters(trail: &Path, d: &Digest, problems: &mut Vec<String>) -> Result<(), TrailError> {
    #[derive(Deserialize)]
    struct Key<'a> {
        #[serde(borrow)]
        emitter: Option<std::borrow::Cow<'a, str>>,
        seq: Option<u64>,
    }
    let mut want: HashMap<(String, u64), (&str, bool)> = d
        .emitters
        .iter()
        .map(|e| {
            (
                (e.emitter.clone(), e.last_seq),
                (e.last_sha256.as_str(), false),
            )
        })
        .collect();
    for_each_line(trail, |_, line| {
        if let Ok(Key {
            emitter: Some(e),
            seq: Some(s),
        }) = serde_json::from_slice::<Key>(line)
        {
            if let Some((sha, found)) = want.get_mut(&(e.into_owned(), s)) {
                if hex(&Sha256::digest(line)) == *sha {
                    *found = true;
                }
            }
        }
    })?;
    let mut missing: Vec<&(String, u64)> = want
        .iter()
        .filter(|(_, (_, found))| !found)
        .map(|(k, _)| k)
        .collect();
    missing.sort();
    for (e, s) in missing {
        problems.push(format!(
            "emitter {}: seq {s}, its last record when digest {} was signed, is missing or altered (tail or emitter deleted)",
            escape(e),
            d.seq
        ));
    }
    Ok(())
}

pub fn render(o: &Outcome) -> String {
    let mut out = String::new();
    for p in &o.problems {
        let _ = writeln!(out, "DIGEST PROBLEM: {p}");
    }
    let _ = writeln!(
        out,
        "digests: {} checked; newest #{} signed at {}, sha256 {} (pin it elsewhere: digests deleted after it cannot be seen from here): {}",
        o.digests,
        o.newest_seq.unwrap_or(0),
        o.newest_ts.as_deref().unwrap_or("-"),
        o.newest_sha256.as_deref().unwrap_or("-"),
        if o.ok { "OK" } else { "FAILED" }
    );
    out
}
