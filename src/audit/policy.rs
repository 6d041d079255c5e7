//! Access-policy detection (SPEC §3): detection, not enforcement.
//!
//! A request is covered by a rule when its path starts with the rule's
//! `path_prefix` — plain prefix semantics, as Envoy's route `prefix`, so
//! `/admin` also covers `/administrator` (write `/admin/` to mean the
//! directory only). The query string is not part of the path.
//!
//! mesh-audit sees the path as the proxy routed it: when Envoy normalizes
//! paths (`normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action`)
//! that is the normalized path. Because the backend may still interpret a
//! path differently, a rule also covers a request whose path, after
//! [`normalize`] (escapes decoded once, `\` and `%5C` as `/`, `;params` stripped from
//! segments, `//`, `.` and `..` resolved), starts with the prefix ignoring
//! ASCII case. So `/public/../admin`, `//admin`, `/%61dmin` and `/ADMIN` are
//! covered by `/admin`; a raw `/admin/../public` is covered too (by its raw
//! form). Detection thus errs toward reporting, never toward missing.

use crate::config::Policy;

/// The name of the first rule the request violates: its path is covered and
/// its source principal (`None` for plaintext) is not allowed.
pub fn violation<'a>(
    policies: &'a [Policy],
    path: &str,
    principal: Option<&str>,
) -> Option<&'a str> {
    if policies.is_empty() {
        return None;
    }
    let path = path.split_once(['?', '#']).map_or(path, |(p, _)| p);
    let normalized = needs_normalizing(path).then(|| normalize(path));
    let seen = normalized.as_deref().unwrap_or(path.as_bytes());
    policies
        .iter()
        .find(|p| {
            let prefix = p.path_prefix.as_bytes();
            let covered = path.as_bytes().starts_with(prefix)
                || (seen.len() >= prefix.len()
                    && seen[..prefix.len()].eq_ignore_ascii_case(prefix));
            covered && !principal.is_some_and(|pr| p.allow_principals.iter().any(|m| m.matches(pr)))
        })
        .map(|p| p.name.as_str())
}

fn needs_normalizing(path: &str) -> bool {
    path.bytes().any(|b| matches!(b, b'%' | b'\\' | b';'))
        || path.contains("//")
        || path.contains("/.")
        || !path.starts_with('/')
}

/// The path as a lenient backend might read it. Works on bytes: decoded
/// escapes need not be UTF-8.
pub fn normalize(path: &str) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(path.len());
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                let c = (h * 16 + l) as u8;
                decoded.push(if c == b'\\' { b'/' } else { c });
                i += 3;
            }
            (b'\\', _, _) => {
                decoded.push(b'/');
                i += 1;
            }
            (c, _, _) => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded.split(|c| *c == b'/') {
        let seg = seg.split(|c| *c == b';').next().unwrap_or(seg);
        trailing_slash = true;
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PrincipalMatch;

    const OPS: &str = "spiffe://cluster.local/ns/ops/sa/console";

    fn policy(name: &str, prefix: &str, allow: &[PrincipalMatch]) -> Policy {
        Policy {
            name: name.into(),
            path_prefix: prefix.into(),
            allow_principals: allow.to_vec(),
        }
    }

    fn policies() -> Vec<Policy> {
        vec![
            policy("admin-only", "/admin", &[PrincipalMatch::Exact(OPS.into())]),
            policy(
                "internal",
                "/internal/",
                &[PrincipalMatch::Prefix(
                    "spiffe://cluster.local/ns/internal/".into(),
                )],
            ),
            policy(
                "users-admin",
                "/admin/users",
                &[PrincipalMatch::Exact(OPS.into())],
            ),
            policy("nobody", "/vault", &[]),
        ]
    }

    #[test]
    fn flags_covered_paths_from_principals_not_allowed() {
        let other = Some("spiffe://cluster.local/ns/shop/sa/frontend");
        let internal = Some("spiffe://cluster.local/ns/internal/sa/job");
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("/admin", Some(OPS), None),
            ("/admin/users/7", Some(OPS), None),
            ("/admin", other, Some("admin-only")),
            ("/admin", None, Some("admin-only")),
            ("/administrator", other, Some("admin-only")),
            ("/admin?x=1", other, Some("admin-only")),
            ("/public?next=/admin", other, None),
            ("/public#/admin", other, None),
            ("/public", other, None),
            ("/", None, None),
            ("", None, None),
            ("/internal/jobs", internal, None),
            ("/internal/jobs", other, Some("internal")),
            ("/internal", other, None),
            ("/vault/x", Some(OPS), Some("nobody")),
        ];
        for (path, principal, want) in cases {
            assert_eq!(
                violation(&policies(), path, *principal),
                *want,
                "{path} from {principal:?}"
            );
        }
    }

    #[test]
    fn path_tricks_do_not_bypass_detection() {
        let other = Some("spiffe://cluster.local/ns/shop/sa/frontend");
        let cases: &[(&str, Option<&str>)] = &[
            ("/public/../admin", Some("admin-only")),
            ("/public/%2e%2e/admin", Some("admin-only")),
            ("/public%2F..%2Fadmin", Some("admin-only")),
            ("/public\\..\\admin", Some("admin-only")),
            ("//admin", Some("admin-only")),
            ("/./admin", Some("admin-only")),
            ("/../admin", Some("admin-only")),
            ("/%61dmin", Some("admin-only")),
            ("/ADMIN/x", Some("admin-only")),
            ("/internal;v=1/x", Some("internal")),
            ("/internal//x", Some("internal")),
            ("/admin/../public", Some("admin-only")),
            ("/public/./x", None),
            ("/public/%zz", None),
        ];
        for (path, want) in cases {
            assert_eq!(violation(&policies(), path, other), *want, "{path}");
        }
        assert_eq!(violation(&policies(), "/%61dmin", Some(OPS)), None);
    }

    #[test]
    fn no_policies_no_violation() {
        assert_eq!(violation(&[], "/admin", None), None);
    }

    #[test]
    fn normalizes_like_a_lenient_backend() {
        let cases: &[(&str, &[u8])] = &[
            ("/a/b", b"/a/b"),
            ("/a/b/", b"/a/b/"),
            ("/a//b/./c/../d", b"/a/b/d"),
            ("/a/b/..", b"/a/"),
            ("/..", b"/"),
            ("", b"/"),
            ("a/b", b"/a/b"),
            ("/a;x=1/b;y", b"/a/b"),
            ("/%41%2f%5c%zz%4", b"/A/%zz%4"),
            ("/%ff", b"/\xff"),
        ];
        for (path, want) in cases {
            assert_eq!(normalize(path), want.to_vec(), "{path}");
        }
    }
}
