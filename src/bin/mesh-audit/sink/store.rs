//! The sink's record store: the trail (one file or segments, see
//! [`Storage`]) plus what makes it safe to write to from a network. Each
//! emitter belongs to the identity that first wrote it (kept in
//! `PATH.owners`, so it survives restarts); a record whose (emitter, seq) is
//! stored with different bytes is a conflict, never "200 and dropped"; a
//! refused batch goes whole to `PATH.quarantine.jsonl`, never into the trail.

use super::batch::{parse_record, Emitter, Incoming};
use super::emitters::{Emitters, Head, Verdict};
use super::storage::{self, AppendError, Opened, Segment, Storage};
use crate::keys::Keyring;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Owner of emitters found in a trail written before owners were recorded:
/// the first identity that writes one claims it.
const UNCLAIMED: &str = "";

pub struct Options {
    pub storage: storage::Options,
    pub window: u64,
    pub max_emitters: usize,
    pub keys: Option<Keyring>,
}

/// What one append did.
#[derive(Debug, Default, PartialEq)]
pub struct Appended {
    pub stored: u64,
    pub duplicates: u64,
    pub bytes: u64,
    /// How far ([`Storage::written`]) the trail must be durable before the
    /// batch is acknowledged: past its own records, or past the stored ones
    /// its duplicates repeat.
    pub durable_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// 403: the emitter belongs to another identity.
    Forbidden,
    /// 409: different bytes for a stored (emitter, seq).
    Conflict,
    /// 422: the batch does not verify against what is stored.
    Invalid,
    /// 503: cannot store now (disk floor, emitter cap, I/O); retry later.
    Unavailable,
}

#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub kind: Refused,
    pub reason: String,
    pub quarantined: bool,
}

/// What opening the store found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub opened: Opened,
    pub records: u64,
    pub unreadable: u64,
    pub unclaimed: usize,
}

#[derive(Serialize, Deserialize)]
struct Binding {
    emitter: String,
    identity: String,
}

#[derive(Serialize)]
struct Quarantined<'a> {
    ts: String,
    identity: &'a str,
    status: u16,
    reason: &'a str,
    records: Vec<String>,
}

/// `PATH.suffix`, beside the trail (for a directory: beside it, not inside).
pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let clean: PathBuf = path.components().collect();
    let mut s = clean.into_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

pub struct Store {
    storage: Storage,
    emitters: Emitters,
    owners: File,
    quarantine: PathBuf,
    max_emitters: usize,
    min_free_bytes: u64,
    keys: Option<Keyring>,
}

impl Store {
    /// Opens the store; `digests` keeps the segment hashes a digest lists.
    pub fn open(options: Options, digests: bool) -> io::Result<(Store, Loaded)> {
        let path = options.storage.path.clone();
        let min_free_bytes = options.storage.min_free_bytes;
        let mut emitters = Emitters::new(options.window);
        let owners_path = sidecar(&path, ".owners");
        let owners = storage::open_regular(&owners_path)?;
        for line in BufReader::new(&owners).lines() {
            let line = line?;
            if let Ok(b) = serde_json::from_str::<Binding>(&line) {
                if let Some(e) = Emitter::parse(&b.emitter) {
                    emitters.bind(e, &b.identity);
                }
            }
        }
        let mut loaded = Loaded::default();
        let (storage, opened) =
            Storage::open(
                options.storage,
                digests,
                |line, segment| match parse_record(line) {
                    Ok(r) => {
                        if !emitters.contains(r.emitter) {
                            emitters.bind(r.emitter, UNCLAIMED);
                            loaded.unclaimed += 1;
                        }
                        emitters.insert(&r, segment);
                        loaded.records += 1;
                    }
                    Err(_) => loaded.unreadable += 1,
                },
            )?;
        loaded.opened = opened;
        let store = Store {
            storage,
            emitters,
            owners,
            quarantine: sidecar(&path, ".quarantine.jsonl"),
            max_emitters: options.max_emitters,
            min_free_bytes,
            keys: options.keys,
        };
        Ok((store, loaded))
    }

    pub fn emitters(&self) -> usize {
        self.emitters.len()
    }

    /// How many keys batches are verified with, if any.
    pub fn keys(&self) -> Option<usize> {
        self.keys.as_ref().map(Keyring::len)
    }

    pub fn heads(&self) -> Vec<Head> {
        self.emitters.heads()
    }

    pub fn segments(&self) -> Option<Vec<Segment>> {
        self.storage.segments()
    }

    pub fn storage(&mut self) -> &mut Storage {
        &mut self.storage
    }

    pub fn quarantine_path(&self) -> &Path {
        &self.quarantine
    }

    /// Writes the records of `batch` not stored yet, written by `identity`;
    /// they count as stored from now on, for the batches that follow, but
    /// the caller acknowledges only once the trail is durable up to
    /// [`Appended::durable_at`] (see `sink::commit`). A refused batch
    /// writes nothing.
    pub fn append(&mut self, batch: &[Incoming], identity: &str) -> Result<Appended, Refusal> {
        let mut fresh_emitters: Vec<Emitter> = Vec::new();
        let mut claimed: Vec<Emitter> = Vec::new();
        // Each emitter's owner is looked up once per batch: a batch is
        // mostly runs of one emitter, and a flood of new ones must not cost
        // a scan of the list per record.
        let mut seen: HashSet<Emitter> = HashSet::new();
        let mut last = None;
        for r in batch {
            if last == Some(r.emitter) || !seen.insert(r.emitter) {
                continue;
            }
            last = Some(r.emitter);
            match self.emitters.owner(r.emitter) {
                None => fresh_emitters.push(r.emitter),
                Some(owner) if owner == identity => {}
                Some(UNCLAIMED) => claimed.push(r.emitter),
                Some(_) => {
                    return Err(Refusal {
                        kind: Refused::Forbidden,
                        reason: format!(
                            "emitter {} belongs to another identity; {identity} may not write it",
                            r.emitter
                        ),
                        quarantined: false,
                    })
                }
            }
        }
        if self.emitters.len() + fresh_emitters.len() > self.max_emitters {
            return Err(Refusal {
                kind: Refused::Unavailable,
                reason: format!(
                    "the sink holds its limit of {} emitters (--max-emitters)",
                    self.max_emitters
                ),
                quarantined: false,
            });
        }

        let mut result = Appended {
            durable_at: self.storage.written(),
            ..Appended::default()
        };
        let mut in_batch: HashMap<(Emitter, u64), [u8; 32]> = HashMap::with_capacity(batch.len());
        let mut bytes = Vec::with_capacity(batch.iter().map(|r| r.line.len() + 1).sum());
        let mut fresh: Vec<&Incoming> = Vec::with_capacity(batch.len());
        let mut conflicts: Vec<String> = Vec::new();
        for r in batch {
            let verdict = match (self.emitters.verdict(r), in_batch.get(&(r.emitter, r.seq))) {
                (_, Some(sha)) if *sha == r.sha => Verdict::Duplicate,
                (_, Some(_)) => Verdict::Conflict,
                (v, None) => v,
            };
            match verdict {
                Verdict::New => {
                    in_batch.insert((r.emitter, r.seq), r.sha);
                    bytes.extend_from_slice(&r.line);
                    bytes.push(b'\n');
                    fresh.push(r);
                }
                Verdict::Duplicate => result.duplicates += 1,
                Verdict::Conflict => conflicts.push(format!(
                    "emitter {} seq {}: different bytes than the stored record",
                    r.emitter, r.seq
                )),
                Verdict::TooOld => conflicts.push(format!(
                    "emitter {} seq {}: older than the sink's window of recent seqs, cannot be told from a conflict",
                    r.emitter, r.seq
                )),
            }
        }
        if !conflicts.is_empty() {
            let more = if conflicts.len() > 1 {
                format!(" (and {} more)", conflicts.len() - 1)
            } else {
                String::new()
            };
            let reason = format!("conflict: {}{more}", conflicts[0]);
            let lines: Vec<&[u8]> = batch.iter().map(|r| r.line.as_slice()).collect();
            return Err(self.refuse(Refused::Conflict, 409, reason, &lines, identity));
        }
        if fresh.is_empty() {
            return Ok(result);
        }
        if let Err(why) = super::ingest::check(batch, &fresh, &self.emitters, self.keys.as_ref()) {
            let lines: Vec<&[u8]> = batch.iter().map(|r| r.line.as_slice()).collect();
            let reason = format!("does not verify: {why}");
            return Err(self.refuse(Refused::Invalid, 422, reason, &lines, identity));
        }
        fresh_emitters.extend(claimed);
        if !fresh_emitters.is_empty() {
            self.bind(&fresh_emitters, identity)
                .map_err(|e| unavailable(format!("could not record the emitters' owner: {e}")))?;
        }
        result.durable_at = self.storage.append(&bytes).map_err(|e| match e {
            AppendError::Full { .. } => unavailable(format!("{e}; retry later")),
            AppendError::Io(e) => unavailable(format!("could not store the batch: {e}")),
        })?;
        let segment = self.storage.segment();
        for r in fresh {
            self.emitters.insert(r, segment);
            result.stored += 1;
        }
        result.bytes = bytes.len() as u64;
        Ok(result)
    }

    fn bind(&mut self, fresh: &[Emitter], identity: &str) -> io::Result<()> {
        let mut lines = Vec::new();
        for e in fresh {
            let b = Binding {
                emitter: e.to_string(),
                identity: identity.to_string(),
            };
            serde_json::to_writer(&mut lines, &b)?;
            lines.push(b'\n');
        }
        self.owners.write_all(&lines)?;
        self.owners.sync_data()?;
        for e in fresh {
            self.emitters.bind(*e, identity);
        }
        Ok(())
    }

    /// Keeps a refused batch in the quarantine file (best effort: never below
    /// the free-space floor) and builds the refusal.
    pub fn refuse(
        &mut self,
        kind: Refused,
        status: u16,
        reason: String,
        records: &[&[u8]],
        identity: &str,
    ) -> Refusal {
        let entry = Quarantined {
            ts: mesh_audit::audit::time::format_rfc3339(now_nanos()),
            identity,
            status,
            reason: &reason,
            records: records
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect(),
        };
        let quarantined = match self.write_quarantine(&entry) {
            Ok(()) => true,
            Err(e) => {
                eprintln!(
                    "mesh-audit sink: could not write {}: {e}",
                    self.quarantine.display()
                );
                false
            }
        };
        Refusal {
            kind,
            reason,
            quarantined,
        }
    }

    fn write_quarantine(&self, entry: &Quarantined) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut file = storage::open_regular(&self.quarantine)?;
        if storage::available(&file)? < self.min_free_bytes.saturating_add(line.len() as u64) {
            return Err(io::Error::other(
                "free disk space is below the sink's floor",
            ));
        }
        file.write_all(&line)?;
        file.sync_data()
    }
}

pub fn unavailable(reason: String) -> Refusal {
    Refusal {
        kind: Refused::Unavailable,
        reason,
        quarantined: false,
    }
}

pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}
