//! The sink's append-only record file: batches are parsed into records,
//! de-duplicated by (emitter, seq) against everything already stored, appended
//! as their exact original lines and fsynced before the caller acknowledges.

use mesh_audit::audit::record::Record;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;

/// One record of an incoming batch: its identity and its exact bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub emitter: String,
    pub seq: u64,
    pub line: Vec<u8>,
}

/// Parses one record line as the filter writes it; the error says why not.
pub fn parse_record(line: Vec<u8>) -> Result<Incoming, String> {
    let record: Record =
        serde_json::from_slice(&line).map_err(|e| format!("not an audit record: {e}"))?;
    let emitter = match record.emitter {
        Some(e) if !e.is_empty() => e,
        _ => return Err("record has no emitter".into()),
    };
    match record.seq {
        Some(seq) if seq >= 1 => Ok(Incoming { emitter, seq, line }),
        _ => Err("record has no seq (must be 1 or more)".into()),
    }
}

/// Splits a JSON-lines body into records. Any bad line refuses the whole
/// batch, so the filter reports it as `rejected` rather than half-stored.
pub fn parse_jsonl(body: &[u8]) -> Result<Vec<Incoming>, String> {
    let mut out = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        out.push(parse_record(line.to_vec()).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok(out)
}

/// What opening an existing file found.
#[derive(Debug, Default, PartialEq)]
pub struct Opened {
    pub records: u64,
    /// Lines that are not records with an emitter and seq (kept, not indexed).
    pub unreadable: u64,
    /// Bytes of an incomplete last line removed (a write that was never acknowledged).
    pub truncated_bytes: u64,
}

/// What one append did.
#[derive(Debug, Default, PartialEq)]
pub struct Appended {
    pub stored: u64,
    pub duplicates: u64,
}

pub struct Store {
    file: File,
    len: u64,
    seen: HashMap<String, HashSet<u64>>,
    /// Set when a failed write could not be rolled back: the file's tail is
    /// unknown, so nothing more may be appended until a restart re-reads it.
    broken: bool,
}

#[derive(Deserialize)]
struct Key {
    emitter: Option<String>,
    seq: Option<u64>,
}

impl Store {
    /// Opens (or creates) `path` and rebuilds the (emitter, seq) set from it.
    pub fn open(path: &Path) -> io::Result<(Store, Opened)> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut opened = Opened::default();
        let mut seen: HashMap<String, HashSet<u64>> = HashMap::new();
        let mut complete = 0u64;
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        reader.seek(SeekFrom::Start(0))?;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            let Some(line) = buf.strip_suffix(b"\n") else {
                break;
            };
            complete += n as u64;
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Key>(line) {
                Ok(Key {
                    emitter: Some(e),
                    seq: Some(s),
                }) => {
                    seen.entry(e).or_default().insert(s);
                    opened.records += 1;
                }
                _ => opened.unreadable += 1,
            }
        }
        drop(reader);
        let len = file.metadata()?.len();
        if len > complete {
            file.set_len(complete)?;
            file.sync_all()?;
            opened.truncated_bytes = len - complete;
        }
        Ok((
            Store {
                file,
                len: complete,
                seen,
                broken: false,
            },
            opened,
        ))
    }

    pub fn emitters(&self) -> usize {
        self.seen.len()
    }

    /// Appends the records not stored yet and fsyncs. On error nothing of the
    /// batch counts as stored and the file is rolled back to its prior length.
    pub fn append(&mut self, batch: Vec<Incoming>) -> io::Result<Appended> {
        if self.broken {
            return Err(io::Error::other(
                "an earlier write failed and could not be undone; restart the sink",
            ));
        }
        let mut result = Appended::default();
        let mut fresh: HashSet<(String, u64)> = HashSet::new();
        let mut bytes = Vec::new();
        for rec in batch {
            let stored = self
                .seen
                .get(&rec.emitter)
                .is_some_and(|s| s.contains(&rec.seq));
            if stored || !fresh.insert((rec.emitter, rec.seq)) {
                result.duplicates += 1;
                continue;
            }
            bytes.extend_from_slice(&rec.line);
            bytes.push(b'\n');
        }
        if fresh.is_empty() {
            return Ok(result);
        }
        if let Err(e) = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data())
        {
            if self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data())
                .is_err()
            {
                self.broken = true;
            }
            return Err(e);
        }
        self.len += bytes.len() as u64;
        result.stored = fresh.len() as u64;
        for (emitter, seq) in fresh {
            self.seen.entry(emitter).or_default().insert(seq);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(emitter: &str, seq: u64) -> Vec<u8> {
        format!("{{\"kind\":\"request\",\"ts\":\"2026-01-01T00:00:00.000000Z\",\"emitter\":\"{emitter}\",\"seq\":{seq}}}")
            .into_bytes()
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mesh-audit-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn jsonl_batch_keeps_exact_bytes_and_names_the_bad_line() {
        let mut body = line("e", 1);
        body.extend_from_slice(b"\n");
        body.extend_from_slice(&line("e", 2));
        let parsed = parse_jsonl(&body).unwrap();
        assert_eq!(
            parsed[1],
            Incoming {
                emitter: "e".into(),
                seq: 2,
                line: line("e", 2)
            }
        );
        body.extend_from_slice(b"\n{\"kind\":\"request\",\"ts\":\"t\"}\n");
        assert_eq!(
            parse_jsonl(&body).unwrap_err(),
            "line 3: record has no emitter"
        );
        assert!(parse_jsonl(b"not json")
            .unwrap_err()
            .starts_with("line 1: not an audit record: "));
    }

    #[test]
    fn duplicates_are_dropped_within_a_batch_and_across_reopen() {
        let path = temp("dups");
        let (mut store, _) = Store::open(&path).unwrap();
        let batch = parse_jsonl(&[line("a", 1), line("a", 2), line("a", 1)].join(&b'\n')).unwrap();
        assert_eq!(
            store.append(batch.clone()).unwrap(),
            Appended {
                stored: 2,
                duplicates: 1
            }
        );
        drop(store);
        let (mut store, opened) = Store::open(&path).unwrap();
        assert_eq!(
            opened,
            Opened {
                records: 2,
                unreadable: 0,
                truncated_bytes: 0
            }
        );
        assert_eq!(
            store.append(batch).unwrap(),
            Appended {
                stored: 0,
                duplicates: 3
            }
        );
        let text = std::fs::read(&path).unwrap();
        assert_eq!(text, [line("a", 1), line("a", 2), Vec::new()].join(&b'\n'));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn an_incomplete_last_line_is_cut_off_at_open() {
        let path = temp("tail");
        let mut content = line("a", 1);
        content.push(b'\n');
        content.extend_from_slice(b"{\"kind\":\"req");
        std::fs::write(&path, &content).unwrap();
        let (mut store, opened) = Store::open(&path).unwrap();
        assert_eq!(opened.truncated_bytes, 12);
        store
            .append(vec![parse_record(line("a", 2)).unwrap()])
            .unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [line("a", 1), line("a", 2), Vec::new()].join(&b'\n')
        );
        let _ = std::fs::remove_file(&path);
    }
}
