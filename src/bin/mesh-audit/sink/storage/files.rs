//! The file-system guarantees the trail relies on: only regular files are
//! opened, never through a symbolic link; one process at a time holds the
//! trail (an exclusive lock); free space is known before a write; a new or
//! removed name is made durable by syncing its directory.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Whether `path` exists as what is wanted (a directory or a regular file);
/// a symbolic link or anything else is an error.
pub fn refuse_link(path: &Path, want_dir: bool) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::other(format!(
            "{} is a symbolic link; the sink writes only to a real {}",
            path.display(),
            if want_dir { "directory" } else { "file" }
        ))),
        Ok(m) if want_dir && !m.is_dir() => Err(io::Error::other(format!(
            "{} is not a directory (rotation stores segments in a directory)",
            path.display()
        ))),
        Ok(m) if !want_dir && !m.is_file() => Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        ))),
        Ok(_) => Ok(true),
    }
}

/// Opens a regular file for reading and appending, never following a link.
pub fn open_regular(path: &Path) -> io::Result<File> {
    refuse_link(path, false)?;
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens an existing file for reading only, never following a link.
pub fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

pub fn lock(file: &File, what: &Path) -> io::Result<()> {
    // SAFETY: flock on a descriptor this process owns; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(io::Error::other(format!(
            "another process (a second sink?) holds the lock on {}; two writers would interleave the trail",
            what.display()
        )));
    }
    Err(e)
}

/// Free bytes for an unprivileged writer on the filesystem of `file`.
pub fn available(file: &File) -> io::Result<u64> {
    // SAFETY: fstatvfs fills the zeroed struct we pass; the descriptor is ours.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Cuts `file` to its first `complete` bytes; returns how many were removed.
pub fn truncate(file: &File, complete: u64) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len > complete {
        file.set_len(complete)?;
        file.sync_all()?;
    }
    Ok(len.saturating_sub(complete))
}
