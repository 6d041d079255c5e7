//! scripts/oci.sh: the OCI image of the filter for an Istio WasmPlugin.

use super::*;

/// A stand-in module: the Wasm header and 256 KiB of varied bytes.
fn sample_module() -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    let mut x: u32 = 0x9e37_79b9;
    bytes.extend((0..256 * 1024).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x % 7) as u8
    }));
    bytes
}

fn oci(scratch: &Scratch, module: &[u8], out: &str) -> std::process::Output {
    let input = scratch.path("input.wasm");
    std::fs::write(&input, module).unwrap();
    let output = scratch.path(out);
    Command::new("bash")
        .arg(repo_root().join("scripts/oci.sh"))
        .args(["--tag", "9.8.7", "--wasm"])
        .arg(&input)
        .arg("--out")
        .arg(&output)
        .output()
        .unwrap()
}

/// (name, type flag, content) of every entry of a tar (ustar or pax).
pub(super) fn tar_entries(bytes: &[u8]) -> Vec<(String, u8, Vec<u8>)> {
    let (mut entries, mut at, mut pax_path) = (Vec::new(), 0, None);
    while at + 512 <= bytes.len() && bytes[at..at + 512].iter().any(|b| *b != 0) {
        let header = &bytes[at..at + 512];
        let field = |r: std::ops::Range<usize>| {
            String::from_utf8_lossy(&header[r])
                .trim_end_matches('\0')
                .to_string()
        };
        let size = usize::from_str_radix(field(124..136).trim(), 8).unwrap();
        let data = bytes[at + 512..at + 512 + size].to_vec();
        let (prefix, name) = (field(345..500), field(0..100));
        let name = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        match header[156] {
            b'x' => {
                pax_path = String::from_utf8_lossy(&data)
                    .lines()
                    .find_map(|l| l.split_once(" path=").map(|(_, p)| p.to_string()))
            }
            b'g' => {}
            flag => entries.push((pax_path.take().unwrap_or(name), flag, data)),
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    entries
}

/// Reads a blob of the layout, checking its name is its digest.
fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        sha256_hex(&bytes),
        hex,
        "blob content does not match its digest"
    );
    assert_eq!(descriptor["size"], json!(bytes.len()), "size of {digest}");
    bytes
}

#[test]
fn oci_image_holds_the_exact_module_as_istios_compat_variant() {
    let scratch = Scratch::new("examples-oci");
    let module = sample_module();
    let run = oci(&scratch, &module, "out");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let layout = scratch.path("out/mesh-audit");

    let layout_file: Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout_file, json!({"imageLayoutVersion": "1.0.0"}));
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        "9.8.7"
    );

    let manifest: Value = serde_json::from_slice(&blob(&layout, &manifests[0])).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        1,
        "Istio reads the compat variant's last layer"
    );
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let mut layer_tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&blob(&layout, &layers[0])[..]),
        &mut layer_tar,
    )
    .unwrap();
    let entries = tar_entries(&layer_tar);
    assert_eq!(
        entries.len(),
        1,
        "{:?}",
        entries.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    assert_eq!((entries[0].0.as_str(), entries[0].1), ("plugin.wasm", b'0'));
    assert!(
        entries[0].2 == module,
        "plugin.wasm differs from the input module"
    );

    let config: Value = serde_json::from_slice(&blob(&layout, &manifest["config"])).unwrap();
    assert_eq!(
        config["rootfs"],
        json!({"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer_tar))]})
    );

    // Nothing else in the layout, and the archive is the same layout.
    let on_disk = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(on_disk, 3, "blobs other than manifest, config and layer");
    let archive = tar_entries(&std::fs::read(scratch.path("out/mesh-audit.tar")).unwrap());
    for (name, flag, data) in archive.iter().filter(|e| e.1 == b'0') {
        assert_eq!(
            &std::fs::read(layout.join(name)).unwrap(),
            data,
            "{name} ({flag})"
        );
    }
    assert_eq!(archive.iter().filter(|e| e.1 == b'0').count(), 5);

    let printed = String::from_utf8_lossy(&run.stdout);
    let digest = manifests[0]["digest"].as_str().unwrap();
    assert!(
        printed.contains(digest) && printed.contains("oras cp") && printed.contains("skopeo copy"),
        "{printed}"
    );
}

#[test]
fn oci_image_is_reproducible_and_refuses_a_file_that_is_not_wasm() {
    let scratch = Scratch::new("examples-oci-repro");
    let module = sample_module();
    let index = |out: &str| {
        assert!(oci(&scratch, &module, out).status.success());
        std::fs::read(scratch.path(out).join("mesh-audit/index.json")).unwrap()
    };
    assert_eq!(
        index("first"),
        index("second"),
        "same module, different manifest digest"
    );

    let refused = oci(&scratch, b"#!/bin/sh\n", "bad");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a WebAssembly module"));
}
