//! Self-tests of the emulated proxy: they hold whatever the filter does.

#[cfg(test)]
#[path = "host/mod.rs"]
mod host;

use host::{artifact, guest, linker_for, Host, State};
use wasmtime::{Module, Store};

/// A minimal module, byte by byte: imports `(module, name)` pairs of type
/// `(i32) -> i32` and exports `run(x)` = the sum of calling each import with x.
fn tiny_module(imports: &[(&str, &str)]) -> Vec<u8> {
    fn name(out: &mut Vec<u8>, s: &str) {
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    fn section(out: &mut Vec<u8>, id: u8, content: Vec<u8>) {
        out.push(id);
        out.push(content.len() as u8);
        out.extend(content);
    }
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    section(&mut wasm, 1, vec![1, 0x60, 1, 0x7f, 1, 0x7f]);
    let mut imp = vec![imports.len() as u8];
    for (m, n) in imports {
        name(&mut imp, m);
        name(&mut imp, n);
        imp.extend([0x00, 0x00]);
    }
    section(&mut wasm, 2, imp);
    section(&mut wasm, 3, vec![1, 0]);
    let mut exp = vec![1];
    name(&mut exp, "run");
    exp.extend([0x00, imports.len() as u8]);
    section(&mut wasm, 7, exp);
    let mut body = vec![0, 0x41, 0];
    for i in 0..imports.len() {
        body.extend([0x20, 0, 0x10, i as u8, 0x6a]);
    }
    body.push(0x0b);
    let mut code = vec![1, body.len() as u8];
    code.extend(body);
    section(&mut wasm, 10, code);
    wasm
}

fn tiny(imports: &[(&str, &str)]) -> wasmtime::Result<Module> {
    Module::new(&artifact::compiled().engine, tiny_module(imports))
}

#[test]
fn the_release_wasm_is_fresh_and_compiles() {
    let path = artifact::wasm_path();
    artifact::check_fresh(&path).unwrap();
    let size = artifact::compiled().size;
    println!("{}: {size} bytes", path.display());
    assert!(size > 0);
}

#[test]
fn a_stale_or_missing_wasm_is_refused_with_what_to_do() {
    let dir = artifact::wasm_path().with_file_name("stale-check");
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("old.wasm");
    std::fs::write(&old, b"\0asm").unwrap();
    let file = std::fs::File::options().write(true).open(&old).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
        .unwrap();
    let err = artifact::check_fresh(&old).unwrap_err();
    assert!(
        err.starts_with("run `make build`: the .wasm is older than "),
        "{err}"
    );
    let missing = dir.join("missing.wasm");
    let err = artifact::check_fresh(&missing).unwrap_err();
    assert_eq!(
        err,
        format!("run `make build`: {} does not exist", missing.display())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_module_exports_the_proxy_wasm_abi() {
    let module = &artifact::compiled().module;
    let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
    assert!(
        exports.contains(&"proxy_abi_version_0_2_1"),
        "exports: {exports:?}"
    );
    for name in [
        "memory",
        "proxy_on_memory_allocate",
        "proxy_on_context_create",
        "proxy_on_vm_start",
        "proxy_on_configure",
        "proxy_on_tick",
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_log",
        "proxy_on_done",
        "proxy_on_delete",
        "proxy_on_http_call_response",
    ] {
        assert!(
            exports.contains(&name),
            "missing export {name}; exports: {exports:?}"
        );
    }
}

#[test]
fn the_module_imports_only_what_the_emulator_provides() {
    let c = artifact::compiled();
    linker_for(&c.engine, &c.module).unwrap();
    let imports: Vec<String> = c
        .module
        .imports()
        .map(|i| format!("{}.{}", i.module(), i.name()))
        .collect();
    println!("imports: {imports:#?}");
    for i in &imports {
        assert!(
            i.starts_with("env.proxy_") || i.starts_with("wasi_snapshot_preview1."),
            "unexpected import {i}"
        );
    }
}

#[test]
fn the_vm_starts_without_traps_or_stub_calls() {
    let mut h = Host::new();
    assert!(h.start());
    assert!(
        h.stub_calls().is_empty(),
        "stubbed imports called: {:?}",
        h.stub_calls()
    );
    assert_eq!(h.state().exit_code, None);
}

#[test]
fn unknown_env_and_foreign_imports_fail_loudly_naming_them() {
    let module = tiny(&[
        ("env", "bogus_function"),
        ("other", "thing"),
        ("env", "proxy_log"),
    ])
    .unwrap();
    let err = match linker_for(&artifact::compiled().engine, &module) {
        Ok(_) => panic!("linking must fail"),
        Err(e) => e,
    };
    assert!(err.contains("env.bogus_function"), "{err}");
    assert!(err.contains("other.thing"), "{err}");
    assert!(!err.contains("proxy_log"), "{err}");
}

#[test]
fn unimplemented_imports_are_stubbed_and_recorded() {
    let module = tiny(&[
        ("wasi_snapshot_preview1", "fd_close"),
        ("env", "proxy_frobnicate"),
    ])
    .unwrap();
    let engine = &artifact::compiled().engine;
    let linker = linker_for(engine, &module).unwrap();
    let mut store = Store::new(engine, State::new());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let run = instance
        .get_typed_func::<i32, i32>(&mut store, "run")
        .unwrap();
    // ENOSYS (52) from WASI, Ok (0) from the proxy stub.
    assert_eq!(run.call(&mut store, 3).unwrap(), 52);
    let stubs = &store.data().stub_calls;
    assert_eq!(stubs.get("wasi_snapshot_preview1.fd_close"), Some(&1));
    assert_eq!(stubs.get("env.proxy_frobnicate"), Some(&1));
}

#[test]
fn a_trap_fails_the_test_showing_the_trap_and_the_logs() {
    let mut h = Host::new();
    assert!(h.configure(r#"{"sink":{"cluster":"audit_sink"}}"#));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // An HTTP context under a root context that does not exist: the SDK panics.
        h.invoke::<(i32, i32), ()>("proxy_on_context_create", (5, 999));
    }));
    let payload = result.expect_err("the call must trap");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        message.contains("the module trapped in proxy_on_context_create"),
        "{message}"
    );
    assert!(message.contains("wasm trap"), "{message}");
    assert!(message.contains("captured logs:"), "{message}");
    assert!(
        message.contains("[critical] mesh-audit: panic:"),
        "the panic hook's line: {message}"
    );
}

#[test]
fn header_pairs_round_trip_in_the_abi_encoding() {
    let pairs = vec![
        (":path".to_string(), b"/x".to_vec()),
        ("x-bin".to_string(), vec![0xff, 0x00, 0xfe]),
        ("empty".to_string(), Vec::new()),
    ];
    let bytes = guest::encode_pairs(&pairs);
    assert_eq!(&bytes[..4], &3u32.to_le_bytes());
    assert_eq!(guest::decode_pairs(&bytes), Some(pairs));
    assert_eq!(guest::decode_pairs(&bytes[..bytes.len() - 2]), None);
    assert_eq!(guest::decode_pairs(&[]), Some(Vec::new()));
}

#[test]
fn random_bytes_are_deterministic_per_seed() {
    let (mut a, mut b) = (State::new(), State::new());
    assert_eq!(a.random_bytes(20), b.random_bytes(20));
    b.rng = 42;
    assert_ne!(a.random_bytes(20), b.random_bytes(20));
}

#[test]
fn the_release_wasm_stays_under_1_mib() {
    let path = host::artifact::wasm_path();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(
        size < 1024 * 1024,
        "{} is {size} bytes; SPEC §6 allows under 1 MiB",
        path.display()
    );
}
