#!/usr/bin/env bash
# Packages mesh_audit.wasm as an OCI image for an Istio WasmPlugin, without a
# container engine (python3 standard library only).
#
#   scripts/oci.sh [--wasm FILE] [--out DIR] [--tag TAG]
#
#   --wasm  the module (default target/wasm32-wasip1/release/mesh_audit.wasm)
#   --out   where to write (default target/oci); produces
#             DIR/mesh-audit/      an OCI image layout (oci-layout, index.json, blobs/)
#             DIR/mesh-audit.tar   the same layout as one tar file (oci-archive)
#   --tag   the reference name recorded in index.json (default: the crate version)
#
# Format: the "compat" variant of the Wasm image specification, which every
# Istio release with WasmPlugin reads: one layer, media type
# application/vnd.oci.image.layer.v1.tar+gzip, a tar.gz holding `plugin.wasm`,
# and a standard OCI image config (application/vnd.oci.image.config.v1+json).
# Istio's other accepted format, the "oci" artifact variant
# (application/vnd.module.wasm.content.layer.v1+wasm), must have exactly two
# layers for Istio's fetcher and uses media types some registries refuse; the
# compat image is an ordinary image any registry and copy tool handles.
#
# The output is reproducible: fixed timestamps, owners and modes, so the same
# .wasm always gives the same manifest digest (usable as WasmPlugin sha256).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wasm=$root/target/wasm32-wasip1/release/mesh_audit.wasm
out=$root/target/oci
tag=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)

while (($#)); do
  case $1 in
    --wasm) wasm=${2:?--wasm needs a file}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --tag) tag=${2:?--tag needs a name}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "oci.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

[[ -f $wasm ]] || { echo "oci.sh: $wasm not found: run \`make build\`" >&2; exit 1; }
[[ -n $tag ]] || { echo "oci.sh: no --tag and no version in Cargo.toml" >&2; exit 1; }

python3 - "$wasm" "$out" "$tag" <<'PYTHON'
import gzip, hashlib, io, json, os, shutil, sys, tarfile

wasm_path, out_dir, tag = sys.argv[1], sys.argv[2], sys.argv[3]
layout = os.path.join(out_dir, "mesh-audit")
archive = os.path.join(out_dir, "mesh-audit.tar")

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def tar_bytes(members):
    """A tar of (name, bytes, mode) with fixed owner and time; a name ending
    in / is a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


with open(wasm_path, "rb") as f:
    module = f.read()
if module[:4] != b"\0asm":
    sys.exit(f"oci.sh: {wasm_path} is not a WebAssembly module")

layer_tar = tar_bytes([("plugin.wasm", module, 0o644)])
layer = gzip.compress(layer_tar, compresslevel=9, mtime=0)

config = canonical({
    "architecture": "wasm",
    "os": "wasip1",
    "config": {},
    "rootfs": {"type": "layers",
               "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
})

blobs = {}


def descriptor(media_type, data, **extra):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return dict(mediaType=media_type, digest=digest, size=len(data), **extra)


manifest = canonical({
    "schemaVersion": 2,
    "mediaType": MANIFEST,
    "config": descriptor(CONFIG, config),
    "layers": [descriptor(LAYER, layer)],
    "annotations": {
        "module.wasm.image/variant": "compat",
        "org.opencontainers.image.title": "mesh-audit",
        "org.opencontainers.image.description":
            "mesh-audit Envoy proxy-wasm audit filter (plugin.wasm)",
        "org.opencontainers.image.version": tag,
    },
})
manifest_desc = descriptor(MANIFEST, manifest,
                           annotations={"org.opencontainers.image.ref.name": tag})
index = canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": [manifest_desc]})
oci_layout = canonical({"imageLayoutVersion": "1.0.0"})

files = [("oci-layout", oci_layout), ("index.json", index)]
files += [("blobs/sha256/" + d.split(":", 1)[1], data) for d, data in sorted(blobs.items())]

if os.path.isdir(layout):
    shutil.rmtree(layout)
for name, data in files:
    path = os.path.join(layout, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

dirs = [("blobs/", b"", 0o755), ("blobs/sha256/", b"", 0o755)]
members = [(n, d, 0o644) for n, d in files[:2]] + dirs + [(n, d, 0o644) for n, d in files[2:]]
with open(archive + ".tmp", "wb") as f:
    f.write(tar_bytes(members))
os.replace(archive + ".tmp", archive)

digest = manifest_desc["digest"]
print(f"""OCI image of {wasm_path} ({len(module)} bytes), compat variant:
  layout   {layout}
  archive  {archive}
  tag      {tag}
  manifest {digest}

Push it with any of (not run here; REGISTRY/REPO is yours):
  oras cp --from-oci-layout {layout}:{tag} REGISTRY/REPO:{tag}
  skopeo copy oci:{layout}:{tag} docker://REGISTRY/REPO:{tag}
  skopeo copy oci-archive:{archive}:{tag} docker://REGISTRY/REPO:{tag}
  crane push {layout} REGISTRY/REPO:{tag}

Then, in the WasmPlugin:
  url: oci://REGISTRY/REPO:{tag}
  sha256: {digest.split(":", 1)[1]}""")
PYTHON
