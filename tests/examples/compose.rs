//! The docker-compose recipe: examples/docker-compose/.

use super::*;

fn compose_dir() -> PathBuf {
    examples().join("docker-compose")
}

/// A short-syntax mount `SOURCE:TARGET[:MODE]`: (source, target).
fn mount(spec: &Value) -> (&str, &str) {
    let mut parts = spec.as_str().unwrap().split(':');
    (parts.next().unwrap(), parts.next().unwrap())
}

#[test]
fn compose_file_mounts_and_builds_only_files_that_exist() {
    let compose = yaml_doc(&compose_dir().join("docker-compose.yaml"));
    let services = compose["services"].as_object().unwrap();
    let built_wasm = repo_root().join(BUILT_WASM);
    for (name, service) in services {
        for spec in service["volumes"].as_array().into_iter().flatten() {
            let (source, _) = mount(spec);
            if source.starts_with('.') || source.starts_with('/') {
                let path = compose_dir().join(source);
                let normal = lexical(&path);
                if normal.starts_with(repo_root().join("target")) {
                    assert_eq!(
                        normal, built_wasm,
                        "{name}: {source} is not what `make build` produces"
                    );
                } else {
                    assert!(path.exists(), "{name}: {source} does not exist");
                }
            } else {
                assert!(
                    compose["volumes"].get(source).is_some(),
                    "{name}: volume {source} is not declared"
                );
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
/// exists and is let through by the Dockerfile's own ignore file.
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
    let ignore = std::fs::read_to_string(format!("{}.dockerignore", dockerfile.display())).unwrap();
    let allowed: Vec<&str> = ignore.lines().filter_map(|l| l.strip_prefix('!')).collect();
    let copies: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|args| !args.starts_with("--from"))
        .flat_map(|args| {
            let words: Vec<&str> = args.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
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

#[test]
fn compose_envoy_gets_its_config_the_keys_and_every_file_it_names() {
    let compose = yaml_doc(&compose_dir().join("docker-compose.yaml"));
    let envoy = &compose["services"]["envoy"];
    let mounts: Vec<(&str, &str)> = envoy["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(mount)
        .collect();
    let command: Vec<&str> = envoy["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_at = command[command.iter().position(|a| *a == "-c").unwrap() + 1];
    assert!(
        mounts.contains(&("./envoy.yaml", config_at)),
        "{mounts:?} does not mount envoy.yaml at {config_at}"
    );

    let mut config = yaml_doc(&compose_dir().join("envoy.yaml"));
    let mut host_env_keys = Vec::new();
    find_key(&config, "host_env_keys", &mut host_env_keys);
    let host_env_keys: Vec<&str> = host_env_keys
        .iter()
        .flat_map(|keys| keys.as_array().unwrap())
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(host_env_keys, KEYS.map(|(k, _)| k));
    for key in host_env_keys {
        assert!(
            envoy["environment"].get(key).is_some(),
            "{key} is not in the envoy service's environment"
        );
    }
    let mut filenames = Vec::new();
    for_each_filename(&mut config, &mut |f| filenames.push(f.clone()));
    assert!(filenames.len() >= 4, "{filenames:?}");
    for file in filenames {
        assert!(
            mounts
                .iter()
                .any(|(_, target)| Path::new(&file).starts_with(target)),
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
