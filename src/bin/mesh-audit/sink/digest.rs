//! The sink's side of signed digests (see [`crate::digests`]): every
//! `--digest-secs` one more digest in `PATH.digests/`, chained to the one
//! before, listing what the trail holds now; then retention deletes closed
//! segments older than `--retain-days` that this signed digest lists.

use crate::digests::{digest_file_index, encode, Digest, EmitterEntry, FileEntry};
use crate::lines::segment_index;
use crate::sink::store::{now_nanos, sidecar, Store};
use mesh_audit::audit::hex;
use mesh_audit::audit::time::format_rfc3339;
use mesh_audit::deliver::seal::Signer;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Options {
    pub key: PathBuf,
    pub every: Duration,
    pub retain: Option<Duration>,
}

pub struct Digester {
    dir: PathBuf,
    signer: Signer,
    seq: u64,
    previous: Option<String>,
    every: Duration,
    retain: Option<Duration>,
    last: Instant,
}

impl Digester {
    pub fn open(trail: &Path, o: Options) -> Result<Digester, String> {
        let signer = crate::keys::load_private_key(&o.key)?;
        let dir = sidecar(trail, ".digests");
        match fs::symlink_metadata(&dir) {
            Ok(m) if !m.is_dir() => return Err(format!("{} is not a directory", dir.display())),
            Ok(_) => {}
            Err(_) => fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?,
        }
        let newest = fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                digest_file_index(&name).map(|i| (i, name))
            })
            .max();
        let (seq, previous) = match newest {
            None => (0, None),
            Some((i, name)) => {
                let bytes = fs::read(dir.join(&name)).map_err(|e| format!("{name}: {e}"))?;
                (i, Some(hex(&Sha256::digest(&bytes))))
            }
        };
        Ok(Digester {
            dir,
            signer,
            seq,
            previous,
            every: o.every,
            retain: o.retain,
            last: Instant::now(),
        })
    }

    pub fn key_id(&self) -> &str {
        self.signer.key_id()
    }

    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    /// Writes the next digest of `store`, then applies retention; returns
    /// the seq of the newest digest. Expired segments are first covered by a
    /// digest, then left out of the next one, and only then deleted: the
    /// newest digest never lists a file that retention removed.
    pub fn write(&mut self, store: &mut Store) -> io::Result<u64> {
        let seq = self.write_one(store)?;
        let Some(max_age) = self.retain else {
            return Ok(seq);
        };
        let expired = store.storage().take_expired(max_age);
        if expired.is_empty() {
            return Ok(seq);
        }
        let newest = self.write_one(store)?;
        for name in &expired {
            match store.storage().delete_segment(name) {
                Ok(()) => eprintln!("mesh-audit sink: deleted segment {name}: older than --retain-days and covered by digest {seq}"),
                Err(e) => eprintln!("mesh-audit sink: error: cannot delete expired segment {name}: {e}"),
            }
        }
        Ok(newest)
    }

    fn write_one(&mut self, store: &mut Store) -> io::Result<u64> {
        self.last = Instant::now();
        let segments = store
            .segments()
            .ok_or_else(|| io::Error::other("the store keeps no segment hashes"))?;
        let listed: Vec<u32> = segments
            .iter()
            .map(|s| segment_index(&s.name).unwrap_or(0) as u32)
            .collect();
        let rotating = store.storage().rotating();
        let emitters = store
            .heads()
            .into_iter()
            .filter(|h| !rotating || listed.contains(&h.segment))
            .map(|h| EmitterEntry {
                emitter: h.emitter.to_string(),
                last_seq: h.high,
                last_sha256: hex(&h.sha),
            })
            .collect();
        let now = now_nanos();
        let digest = Digest {
            kind: "digest".into(),
            seq: self.seq + 1,
            ts: format_rfc3339(now),
            previous: self.previous.clone(),
            key_id: self.signer.key_id().to_string(),
            files: segments
                .iter()
                .map(|s| FileEntry {
                    name: s.name.clone(),
                    size: s.size,
                    sha256: hex(&s.sha),
                })
                .collect(),
            emitters,
            sig: None,
        };
        let bytes = encode(&digest, &self.signer);
        let stamp: String = digest.ts[..19]
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == 'T')
            .collect();
        let name = format!("{:08}-{stamp}Z.json", digest.seq);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(&name))?;
        fs::File::open(&self.dir)?.sync_all()?;
        self.seq = digest.seq;
        self.previous = Some(hex(&Sha256::digest(&bytes)));
        Ok(digest.seq)
    }
}
