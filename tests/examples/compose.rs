//! The docker-compose recipe: examples/docker-compose/, checked without a
//! container engine. tests/containers runs it for real.

use super::*;

fn compose_dir() -> PathBuf {
    examples().join("docker-compose")
}

fn compose() -> Value {
    yaml_doc(&compose_dir().join("docker-compose.yaml"))
}

/// `${VAR:-default}` → (VAR, default); anything else is not a variable.
fn variable(text: &str) -> Option<(&str, &str)> {
    text.strip_prefix("${")?.strip_suffix('}')?.split_once(":-")
}

/// A value as Compose resolves it when its variable is unset.
fn unset(text: &str) -> &str {
    variable(text).map_or(text, |(_, default)| default)
}

/// Long-syntax mounts only: a short `SOURCE:TARGET` bind makes Docker create
/// a root-owned directory where a missing file should be.
fn mounts(name: &str, service: &Value) -> Vec<(String, String, String)> {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            assert!(m.is_object(), "{name}: short-syntax mount {m}");
            let field = |f: &str| {
                m[f].as_str()
                    .unwrap_or_else(|| panic!("{name}: mount without {f}: {m}"))
                    .to_string()
            };
            (
                field("type"),
                unset(&field("source")).to_string(),
                field("target"),
            )
        })
        .collect()
}

#[test]
fn compose_file_mounts_and_builds_only_files_that_exist() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let built_wasm = repo_root().join(BUILT_WASM);
    for (name, service) in services {
        for (kind, source, _) in mounts(name, service) {
            match kind.as_str() {
                "bind" => {
                    let path = compose_dir().join(&source);
                    let normal = lexical(&path);
                    if normal.starts_with(repo_root().join("target")) {
                        assert_eq!(
                            normal, built_wasm,
                            "{name}: {source} is not what `make build` produces"
                        );
                    } else if source == "./keyring" {
                        // Made by keys.sh, like the env files: not in git.
                        let keys_sh =
                            std::fs::read_to_string(compose_dir().join("keys.sh")).unwrap();
                        assert!(
                            keys_sh.contains(r#">"$dir/keyring""#),
                            "{name}: {source} is not what keys.sh writes"
                        );
                    } else {
                        assert!(path.is_file(), "{name}: {source} is not a file");
                    }
                }
                "volume" => assert!(
                    compose["volumes"].get(&source).is_some(),
                    "{name}: volume {source} is not declared"
                ),
                other => panic!("{name}: mount type {other}"),
            }
        }
        for dependency in depends_on(service) {
            assert!(
                services.contains_key(&dependency),
                "{name} depends on unknown {dependency}"
            );
        }
        if let Some(build) = service.get("build") {
            check_build(name, build);
        }
    }
}

/// Compose v1 (Debian's 1.29) rejects a top-level `name:`; every image is a
/// variable (the tests point them at local builds) whose default is what a
/// user pulls or builds, Envoy pinned to the version the tests run.
#[test]
fn compose_file_runs_on_compose_v1_with_images_from_variables() {
    let compose = compose();
    let top: Vec<&String> = compose.as_object().unwrap().keys().collect();
    for key in &top {
        assert!(
            ["services", "networks", "volumes"].contains(&key.as_str()) || key.starts_with("x-"),
            "top-level `{key}:` is not Compose v1 syntax"
        );
    }
    let project = std::fs::read_to_string(compose_dir().join(".env")).unwrap();
    assert!(
        project
            .lines()
            .any(|l| l.starts_with("COMPOSE_PROJECT_NAME=")),
        "{project}"
    );
    let image = |service: &str| {
        let image = compose["services"][service]["image"].as_str().unwrap();
        variable(image).unwrap_or_else(|| panic!("{service}: image {image} is not a variable"))
    };
    assert_eq!(
        image("envoy"),
        (
            "MESH_AUDIT_ENVOY_IMAGE",
            &*format!("envoyproxy/envoy:v{}", e2e::ENVOY_VERSION)
        )
    );
    assert_eq!(image("sink").0, "MESH_AUDIT_SINK_IMAGE");
    for client in ["pki", "frontend", "reporter"] {
        assert_eq!(image(client).0, "MESH_AUDIT_CLIENT_IMAGE", "{client}");
    }
    // The images without a public default are built from this folder.
    for service in ["sink", "pki"] {
        assert!(
            compose["services"][service].get("build").is_some(),
            "{service}"
        );
    }
    let images = std::fs::read_to_string(repo_root().join("images/build.sh")).unwrap();
    for (_, service) in compose["services"].as_object().unwrap() {
        let (var, _) = variable(service["image"].as_str().unwrap()).unwrap();
        assert!(
            images.contains(&format!("{var}=")),
            "images/build.sh does not write {var}"
        );
    }
}

/// The long-running services say when they are ready, and what waits for
/// them waits for that; nothing installs packages when it starts.
#[test]
fn compose_services_have_healthchecks_and_install_nothing_at_start() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    for name in ["sink", "envoy"] {
        let test = &services[name]["healthcheck"]["test"];
        assert_eq!(test[0], "CMD", "{name}: {test}");
    }
    assert_eq!(
        services["envoy"]["depends_on"]["sink"]["condition"],
        "service_healthy"
    );
    assert_eq!(
        services["envoy"]["depends_on"]["pki"]["condition"],
        "service_completed_successfully"
    );
    for client in ["frontend", "reporter"] {
        assert_eq!(
            services[client]["depends_on"]["envoy"]["condition"],
            "service_healthy"
        );
    }
    for (name, service) in services {
        let text = format!("{} {}", service["command"], service["entrypoint"]);
        for installer in ["apt-get", "apk ", "dnf ", "yum "] {
            assert!(
                !text.contains(installer),
                "{name} runs {installer} at start: {text}"
            );
        }
    }
}

/// The keys come from the env files keys.sh writes (mode 0600, git-ignored),
/// never from the compose file itself: the proxy's keys.env for Envoy, the
/// auditor's auditor.env (the chain key, no signing key) for the sink, and
/// the public keyring the sink checks seals against, mounted read-only.
#[test]
fn compose_keys_come_from_the_env_file_keys_sh_writes() {
    let compose = compose();
    let keys_sh = std::fs::read_to_string(compose_dir().join("keys.sh")).unwrap();
    assert!(keys_sh.contains("umask 077"), "{keys_sh}");
    for (key, _) in KEYS {
        assert!(
            keys_sh.contains(&format!("{key}=")),
            "keys.sh does not write {key}"
        );
    }
    assert!(keys_sh.contains(r#">"$dir/keyring""#), "{keys_sh}");
    let ignored = std::fs::read_to_string(compose_dir().join(".gitignore")).unwrap();
    for file in ["keys.env", "auditor.env", "keyring"] {
        assert!(ignored.lines().any(|l| l == file), "{ignored}");
    }
    for (name, env_file) in [
        ("sink", ("MESH_AUDIT_AUDITOR_KEYS_FILE", "auditor.env")),
        ("envoy", ("MESH_AUDIT_KEYS_FILE", "keys.env")),
    ] {
        let service = &compose["services"][name];
        assert_eq!(
            variable(service["env_file"].as_str().unwrap()),
            Some(env_file),
            "{name}"
        );
        assert!(service.get("environment").is_none(), "{name}: keys inline");
    }
}

fn depends_on(service: &Value) -> Vec<String> {
    match &service["depends_on"] {
        Value::Array(names) => names
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect(),
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// `path` with `.` and `..` resolved without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The build context exists, the Dockerfile is in it, every COPY source
/// exists and is let through by the context's .dockerignore (read by
/// BuildKit and by the classic builder Compose v1 uses).
fn check_build(service: &str, build: &Value) {
    let context = compose_dir().join(build["context"].as_str().unwrap());
    assert!(
        context.is_dir(),
        "{service}: build context {} missing",
        context.display()
    );
    let dockerfile = context.join(build["dockerfile"].as_str().unwrap());
    let text = std::fs::read_to_string(&dockerfile)
        .unwrap_or_else(|e| panic!("{}: {e}", dockerfile.display()));
    let copies: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|args| !args.starts_with("--from"))
        .flat_map(|args| {
            let words: Vec<&str> = args.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    if copies.is_empty() {
        return;
    }
    let ignore = std::fs::read_to_string(context.join(".dockerignore"))
        .unwrap_or_else(|e| panic!("{service}: {}/.dockerignore: {e}", context.display()));
    let allowed: Vec<&str> = ignore.lines().filter_map(|l| l.strip_prefix('!')).collect();
    assert!(
        copies.contains(&"src"),
        "{service}: no COPY of src in {copies:?}"
    );
    for source in &copies {
        assert!(
            context.join(source).exists(),
            "{service}: COPY {source} does not exist"
        );
        assert!(
            allowed.contains(source),
            "{service}: {source} is excluded by the .dockerignore"
        );
    }
    assert!(
        text.contains("cargo build --release --locked --features cli"),
        "{service}: the CLI is not built"
    );
    // images/build.sh builds this stage alone on its local base.
    assert!(
        text.contains(" AS runtime\n"),
        "{service}: no `runtime` stage"
    );
    // Cargo refuses a manifest whose targets' files are missing.
    let manifest = std::fs::read_to_string(context.join("Cargo.toml")).unwrap();
    for line in manifest.lines().filter(|l| l.starts_with("path = ")) {
        let path = line.trim_start_matches("path = ").trim_matches('"');
        let first = path.split('/').next().unwrap();
        assert!(
            copies.contains(&first),
            "{service}: Cargo.toml names {path}, which the image does not copy"
        );
    }
}

/// The proxy → sink hop is mTLS: the sink serves its own certificate and
/// admits only the proxy's identity; Envoy's sink cluster presents that
/// identity (the backend's workload certificate, which envoy/pki.sh makes
/// good for client authentication too) and checks the sink's.
#[test]
fn compose_sink_is_reached_over_mtls_by_the_proxys_identity_only() {
    let compose = compose();
    let proxy = "spiffe://cluster.local/ns/default/sa/backend";
    let command: Vec<&str> = compose["services"]["sink"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for flag in [
        "--tls-cert=/pki/certs/audit-sink.pem".to_string(),
        "--tls-key=/pki/certs/audit-sink-key.pem".to_string(),
        "--client-ca=/pki/certs/ca.pem".to_string(),
        format!("--allow-principal={proxy}"),
    ] {
        assert!(
            command.contains(&flag.as_str()),
            "sink lacks {flag}: {command:?}"
        );
    }
    assert!(
        !command.iter().any(|a| a.contains("allow-unauthenticated")),
        "{command:?}"
    );
    // Every batch's seal is checked at ingest against the keyring keys.sh
    // writes, mounted read-only where `--keys` names it.
    assert!(
        command.contains(&"--keys=/etc/mesh-audit/keyring"),
        "sink does not verify at ingest: {command:?}"
    );
    let keyring = mounts("sink", &compose["services"]["sink"])
        .into_iter()
        .find(|(_, _, target)| target == "/etc/mesh-audit/keyring");
    assert_eq!(
        keyring.map(|(kind, source, _)| (kind, source)),
        Some(("bind".to_string(), "./keyring".to_string()))
    );
    let config = yaml_doc(&compose_dir().join("envoy.yaml"));
    let cluster = config["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "audit_sink")
        .unwrap();
    let tls = &cluster["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], "audit-sink", "{tls}");
    let context = &tls["common_tls_context"];
    assert_eq!(
        context["tls_certificates"][0]["certificate_chain"]["filename"],
        "/pki/certs/server.pem"
    );
    assert_eq!(
        context["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
        "spiffe://cluster.local/ns/audit/sa/audit-sink"
    );
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
            "-in",
        ])
        .arg(pki().join("server.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("URI:{proxy}")), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
}

#[test]
fn compose_envoy_gets_its_config_and_every_file_it_names() {
    let compose = compose();
    let envoy = &compose["services"]["envoy"];
    let mounts = mounts("envoy", envoy);
    let command: Vec<&str> = envoy["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_at = command[command.iter().position(|a| *a == "-c").unwrap() + 1];
    assert!(
        mounts.iter().any(|(kind, source, target)| kind == "bind"
            && source == "./envoy.yaml"
            && target == config_at),
        "{mounts:?} does not mount envoy.yaml at {config_at}"
    );
    for (_, _, target) in mounts.iter().filter(|(kind, _, _)| kind == "bind") {
        let mount = envoy["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["target"] == target.as_str())
            .unwrap();
        assert_eq!(mount["read_only"], true, "{target} is writable");
    }

    let mut config = yaml_doc(&compose_dir().join("envoy.yaml"));
    let mut host_env_keys = Vec::new();
    find_key(&config, "host_env_keys", &mut host_env_keys);
    let host_env_keys: Vec<&str> = host_env_keys
        .iter()
        .flat_map(|keys| keys.as_array().unwrap())
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(host_env_keys, KEYS.map(|(k, _)| k));
    let mut filenames = Vec::new();
    for_each_filename(&mut config, &mut |f| filenames.push(f.clone()));
    assert!(filenames.len() >= 4, "{filenames:?}");
    for file in filenames {
        assert!(
            mounts
                .iter()
                .any(|(_, _, target)| Path::new(&file).starts_with(target)),
            "{file} is not mounted into the envoy service"
        );
    }
}

fn find_key<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            if k == key {
                out.push(v);
            } else {
                find_key(v, key, out);
            }
        }),
        Value::Array(items) => items.iter().for_each(|v| find_key(v, key, out)),
        _ => {}
    }
}
