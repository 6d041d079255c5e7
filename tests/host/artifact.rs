//! Finding the release `.wasm`, refusing a stale one, and compiling it once
//! per test binary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;
use wasmtime::{Engine, Module};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target"))
}

pub fn wasm_path() -> PathBuf {
    target_dir()
        .join("wasm32-wasip1")
        .join("release")
        .join("mesh_audit.wasm")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The files the `.wasm` was built from, from the dep-info file cargo writes
/// next to it (`mesh_audit.d`): only those can make it stale. A `#[cfg(test)]`
/// module or the native CLI is not part of the `.wasm`, and cargo would not
/// rebuild it for them. Without dep-info, every file under `src/`.
fn sources(wasm: &Path) -> Vec<PathBuf> {
    let root = manifest_dir();
    let mut files = vec![root.join("Cargo.toml")];
    let dep_info = std::fs::read_to_string(wasm.with_extension("d")).unwrap_or_default();
    let line = dep_info.lines().find(|l| l.contains("mesh_audit.wasm:"));
    match line.and_then(|l| l.split_once(".wasm:")) {
        Some((_, deps)) => {
            let deps = deps.replace("\\ ", "\u{0}");
            for dep in deps.split_whitespace() {
                let path = PathBuf::from(dep.replace('\u{0}', " "));
                if path.starts_with(&root) {
                    files.push(path);
                }
            }
        }
        None => walk(&root.join("src"), &mut files),
    }
    files
}

/// Fails when the `.wasm` is missing or older than a file it is built from.
pub fn check_fresh(wasm: &Path) -> Result<(), String> {
    let Some(built) = modified(wasm) else {
        return Err(format!(
            "run `make build`: {} does not exist",
            wasm.display()
        ));
    };
    let root = manifest_dir();
    for file in sources(wasm) {
        if modified(&file).is_some_and(|m| m > built) {
            let shown = file.strip_prefix(&root).unwrap_or(&file);
            return Err(format!(
                "run `make build`: the .wasm is older than {}",
                shown.display()
            ));
        }
    }
    Ok(())
}

/// Compiles `bytes`, reusing the machine code of an earlier test binary:
/// Cranelift in a debug build takes seconds per compile, and every test
/// binary would pay it. The cache file is named by the `.wasm`'s SHA-256.
fn load(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Module> {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(bytes)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = target_dir().join("wasm-host-cache");
    let cached = dir.join(format!("mesh_audit-{digest}.cwasm"));
    if cached.exists() {
        // SAFETY: the file is only ever written below, by `Module::serialize`
        // of this very `.wasm` (its digest names the file), through an atomic
        // rename; wasmtime checks the engine version and settings recorded in
        // it and refuses a mismatch, and we then recompile.
        if let Ok(module) = unsafe { Module::deserialize_file(engine, &cached) } {
            return Ok(module);
        }
    }
    let module = Module::new(engine, bytes)?;
    if let Ok(serialized) = module.serialize() {
        if std::fs::create_dir_all(&dir).is_ok() {
            for old in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_file(old.path());
            }
            let tmp = dir.join(format!(".tmp-{}-{digest}", std::process::id()));
            if std::fs::write(&tmp, serialized).is_ok() {
                let _ = std::fs::rename(&tmp, &cached);
            }
        }
    }
    Ok(module)
}

pub struct Compiled {
    pub engine: Engine,
    pub module: Module,
    pub size: usize,
}

/// The module, compiled once per test binary. Panics (test code) with a
/// message saying what to do when the artifact is missing or stale.
pub fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Result<Compiled, String>> = OnceLock::new();
    let result = COMPILED.get_or_init(|| {
        let path = wasm_path();
        check_fresh(&path)?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let engine = Engine::default();
        let module = load(&engine, &bytes)
            .map_err(|e| format!("{} does not compile: {e:?}", path.display()))?;
        Ok(Compiled {
            engine,
            module,
            size: bytes.len(),
        })
    });
    match result {
        Ok(c) => c,
        Err(message) => panic!("{message}"),
    }
}
