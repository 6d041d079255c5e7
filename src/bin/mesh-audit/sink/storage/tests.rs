//! The trail on a real file system: links and second writers refused, segments
//! rotated and gzipped and read back the same, the free-space floor kept.

use super::*;
use std::path::Path;

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("mesh-audit-storage-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&p);
    let _ = fs::remove_file(&p);
    p
}

fn file_options(path: &Path) -> Options {
    Options {
        path: path.to_path_buf(),
        rotate_bytes: None,
        rotate_secs: None,
        gzip: false,
        min_free_bytes: 0,
    }
}

#[test]
fn a_symlink_or_a_second_writer_is_refused() {
    let target = scratch("target");
    fs::write(&target, b"precious\n").unwrap();
    let link = scratch("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = Storage::open(file_options(&link), true, |_, _| {})
        .err()
        .unwrap();
    assert!(e.to_string().contains("is a symbolic link"), "{e}");
    assert_eq!(fs::read(&target).unwrap(), b"precious\n");

    let path = scratch("locked");
    let (_first, _) = Storage::open(file_options(&path), true, |_, _| {}).unwrap();
    let e = Storage::open(file_options(&path), true, |_, _| {})
        .err()
        .unwrap();
    assert!(e.to_string().contains("holds the lock"), "{e}");
    for p in [target, link, path] {
        let _ = fs::remove_file(p);
    }
}

#[test]
fn segments_rotate_by_size_and_reopen_in_order() {
    let dir = scratch("segments");
    let options = || Options {
        rotate_bytes: Some(10),
        gzip: true,
        ..file_options(&dir)
    };
    let (mut s, _) = Storage::open(options(), true, |_, _| {}).unwrap();
    for i in 0..3 {
        s.append(format!("line-{i}-xx\n").as_bytes()).unwrap();
    }
    assert_eq!(s.closed.len(), 2);
    let listed = s.segments().unwrap();
    drop(s);
    // Wait for the background gzip of the two closed segments.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while list_segments(&dir)
        .unwrap()
        .iter()
        .filter(|(_, n)| n.ends_with(".gz"))
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "segments not gzipped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut seen = Vec::new();
    let (s, opened) = Storage::open(options(), true, |l, seg| {
        seen.push((String::from_utf8_lossy(l).into_owned(), seg))
    })
    .unwrap();
    assert_eq!(opened.lines, 3);
    assert_eq!(
        seen.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        ["line-0-xx", "line-1-xx", "line-2-xx"]
    );
    assert_eq!(seen.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [1, 2, 3]);
    let reopened: Vec<(String, u64, [u8; 32])> = s
        .segments()
        .unwrap()
        .into_iter()
        .map(|x| (x.name, x.size, x.sha))
        .collect();
    let before: Vec<(String, u64, [u8; 32])> = listed
        .into_iter()
        .map(|x| (x.name, x.size, x.sha))
        .collect();
    assert_eq!(
        reopened, before,
        "same names, sizes and hashes after gzip and reopen"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn below_the_free_space_floor_nothing_is_written() {
    let path = scratch("floor");
    let (mut s, _) = Storage::open(
        Options {
            min_free_bytes: u64::MAX / 2,
            ..file_options(&path)
        },
        false,
        |_, _| {},
    )
    .unwrap();
    assert!(matches!(s.append(b"x\n"), Err(AppendError::Full { .. })));
    assert_eq!(fs::read(&path).unwrap(), b"");
    let _ = fs::remove_file(&path);
}
