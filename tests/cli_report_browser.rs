//! The HTML report opens in a real browser: headless Chromium renders it to
//! a PNG in which the access graph's colours are visible. Chromium is
//! installed when missing (as CI does); a failed install fails the test.
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use cli_support::{known_trail, request, run, trail, Call, Scratch};
use mesh_audit::audit::record::Decision;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn chromium() -> PathBuf {
    if let Some(found) = BROWSERS.iter().find_map(|b| on_path(b)) {
        return found;
    }
    for args in [&["update"][..], &["install", "-y", "chromium"][..]] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "apt-get {args:?} failed: {status:?}"
        );
    }
    on_path("chromium").expect("chromium installed but not on PATH")
}

/// A small mesh: callers with allowed, failing and denied traffic.
fn mesh_trail() -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let calls = [
        (
            "spiffe://cluster.local/ns/shop/sa/checkout",
            "payments",
            Decision::Allowed,
            40,
        ),
        (
            "spiffe://cluster.local/ns/shop/sa/checkout",
            "payments",
            Decision::Denied,
            6,
        ),
        (
            "spiffe://cluster.local/ns/shop/sa/frontend",
            "payments",
            Decision::Allowed,
            12,
        ),
        (
            "spiffe://cluster.local/ns/batch/sa/reindex",
            "backend",
            Decision::Error,
            9,
        ),
        (
            "spiffe://cluster.local/ns/batch/sa/reindex",
            "backend",
            Decision::Allowed,
            30,
        ),
        (
            "spiffe://cluster.local/ns/ops/sa/console",
            "backend",
            Decision::Denied,
            3,
        ),
    ];
    for (principal, cluster, decision, n) in calls {
        for _ in 0..n {
            let call = Call {
                principal: Some(principal),
                cluster,
                decision,
                ..Call::default()
            };
            records.push(request("2026-11-21T14:05:00.000000Z", &call));
        }
    }
    let mut lines = known_trail();
    lines.extend(trail("cccccccccccccccccccccccccccccccc", None, records));
    lines
}

fn screenshot(browser: &Path, html: &Path, png: &Path, profile: &Path) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,900")
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish the screenshot in time");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pixels of `png` as RGB triples.
fn pixels(png: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(png).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, px)
}

fn count_near(px: &[[u8; 3]], target: [u8; 3], tolerance: u8) -> usize {
    px.iter()
        .filter(|p| {
            p.iter()
                .zip(target)
                .all(|(a, b)| a.abs_diff(b) <= tolerance)
        })
        .count()
}

#[test]
fn the_html_report_renders_its_access_graph_in_chromium() {
    let browser = chromium();
    let s = Scratch::new("report-browser");
    let file = s.write_lines("trail.jsonl", &mesh_trail());
    let html = s.path("report.html");
    let out = run(
        &[
            "report",
            &file,
            "--format",
            "html",
            "-o",
            html.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));

    let png = s.path("report.png");
    screenshot(&browser, &html, &png, &s.path("profile"));
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(
        size > 20_000,
        "a {size}-byte screenshot is too small to hold the graph"
    );
    if let Some(dir) = std::env::var_os("MESH_AUDIT_KEEP_SCREENSHOT") {
        std::fs::copy(&png, Path::new(&dir).join("report.png")).unwrap();
    }

    let (width, height, px) = pixels(&png);
    assert_eq!((width, height), (1200, 900));
    let colours: HashSet<[u8; 3]> = px.iter().copied().collect();
    assert!(
        colours.len() > 50,
        "only {} distinct colours: blank page?",
        colours.len()
    );
    // The graph's own colours: denied edges, allowed edges, source and destination nodes.
    // Edges are anti-aliased (loose match); node fills are flat (tight match,
    // so the table's grey header does not count).
    for (what, rgb, tolerance, at_least) in [
        // Far more than the legend's few short strokes: the edges themselves.
        ("denied edge red", [0xc6, 0x28, 0x28], 16, 1_500),
        ("allowed edge green", [0x2e, 0x7d, 0x32], 16, 1_500),
        ("source node fill", [0xe3, 0xf2, 0xfd], 3, 10_000),
        ("destination node fill", [0xf3, 0xe5, 0xf5], 3, 8_000),
    ] {
        let n = count_near(&px, rgb, tolerance);
        eprintln!("{what}: {n} pixels");
        assert!(
            n >= at_least,
            "{what}: {n} pixels, expected at least {at_least}"
        );
    }
}
