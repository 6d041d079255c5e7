//! Who may write to the sink: TLS (rustls) with client certificates from
//! `--client-ca` whose SPIFFE ID matches an `--allow-principal` pattern, or a
//! bearer token held in an environment variable named by `--token-env`. The
//! identity that authenticated a batch is what emitters are bound to.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

pub struct Options {
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub allow_principals: Vec<String>,
    pub token_envs: Vec<String>,
}

/// A SPIFFE ID pattern: exact, or a prefix followed by `*`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern(String);

impl Pattern {
    pub fn matches(&self, principal: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => principal.starts_with(prefix),
            None => principal == self.0,
        }
    }
}

/// A token's SHA-256, so comparing takes the same time whatever the input.
struct Token {
    identity: String,
    sha: [u8; 32],
}

pub struct Auth {
    pub tls: Option<Arc<ServerConfig>>,
    patterns: Vec<Pattern>,
    tokens: Vec<Token>,
}

/// What the TLS handshake established about the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Peer {
    /// No TLS, or TLS without a client certificate.
    Anonymous,
    /// A certificate that chains to `--client-ca`, with its one SPIFFE ID.
    Principal(String),
    /// A certificate that chains to `--client-ca` but carries no single SPIFFE ID.
    NoSpiffeId,
}

#[derive(Debug, PartialEq)]
pub enum Verdict {
    Allowed(String),
    /// 401: no credentials, or a token that is not accepted.
    Unauthenticated(&'static str),
    /// 403: authenticated, but not allowed to write.
    Forbidden(String),
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

impl Auth {
    pub fn new(o: Options) -> Result<Auth, String> {
        let patterns: Vec<Pattern> = o.allow_principals.iter().cloned().map(Pattern).collect();
        if !patterns.is_empty() && o.client_ca.is_none() {
            return Err("--allow-principal needs --client-ca (the CA that issues the proxies' certificates)".into());
        }
        if o.client_ca.is_some() && patterns.is_empty() {
            return Err("--client-ca needs at least one --allow-principal (a SPIFFE ID, or a prefix ending in *)".into());
        }
        if let Some(p) = patterns.iter().find(|p| !p.0.starts_with("spiffe://")) {
            return Err(format!(
                "--allow-principal {:?}: a SPIFFE ID starts with spiffe://",
                p.0
            ));
        }
        let tls = match (&o.tls_cert, &o.tls_key) {
            (None, None) if o.client_ca.is_some() => {
                return Err("--client-ca needs --tls-cert and --tls-key".into())
            }
            (None, None) => None,
            (Some(cert), Some(key)) => {
                Some(Arc::new(server_config(cert, key, o.client_ca.as_deref())?))
            }
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        let mut tokens = Vec::new();
        for var in &o.token_envs {
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => tokens.push(Token {
                    identity: format!("token:{var}"),
                    sha: Sha256::digest(v.trim().as_bytes()).into(),
                }),
                _ => {
                    return Err(format!(
                        "--token-env {var}: the environment variable is not set"
                    ))
                }
            }
        }
        Ok(Auth {
            tls,
            patterns,
            tokens,
        })
    }

    /// True when nothing is configured: anyone who reaches the port may write.
    pub fn is_open(&self) -> bool {
        self.patterns.is_empty() && self.tokens.is_empty()
    }

    /// How a request authenticates: its connection's client certificate, else
    /// its `authorization: Bearer` token.
    pub fn check(&self, peer: &Peer, authorization: Option<&[u8]>) -> Verdict {
        match peer {
            Peer::Principal(p) if self.patterns.iter().any(|pat| pat.matches(p)) => {
                return Verdict::Allowed(p.clone())
            }
            Peer::Principal(p) => {
                return Verdict::Forbidden(format!("principal {p} is not allowed to write"))
            }
            Peer::NoSpiffeId => {
                return Verdict::Forbidden(
                    "the client certificate has no single spiffe:// URI SAN".into(),
                )
            }
            Peer::Anonymous => {}
        }
        if self.is_open() {
            return Verdict::Allowed("anonymous".into());
        }
        let Some(value) = authorization else {
            return Verdict::Unauthenticated(if self.tokens.is_empty() {
                "a client certificate is required"
            } else {
                "a bearer token or a client certificate is required"
            });
        };
        let token = match value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
        {
            Some(t) => t.trim_ascii(),
            None => return Verdict::Unauthenticated("authorization is not a bearer token"),
        };
        let sha: [u8; 32] = Sha256::digest(token).into();
        // Compare with every token, so the time taken says nothing of which matched.
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.sha.ct_eq(&sha)) {
                found = Some(t.identity.clone());
            }
        }
        match found {
            Some(identity) => Verdict::Allowed(identity),
            None => Verdict::Unauthenticated("the bearer token is not accepted"),
        }
    }
}

fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            // Without a certificate the handshake still completes, so the
            // client gets a readable 401 (or may use a token) instead of an alert.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The identity in a verified client certificate: its single spiffe:// URI SAN.
pub fn peer(end_entity: Option<&CertificateDer<'_>>) -> Peer {
    let Some(der) = end_entity else {
        return Peer::Anonymous;
    };
    let Ok(cert) = Certificate::from_der(der.as_ref()) else {
        return Peer::NoSpiffeId;
    };
    let mut ids = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != SubjectAltName::OID {
            continue;
        }
        let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) else {
            return Peer::NoSpiffeId;
        };
        for name in san.0 {
            if let GeneralName::UniformResourceIdentifier(uri) = name {
                if uri.as_str().starts_with("spiffe://") {
                    ids.push(uri.as_str().to_string());
                }
            }
        }
    }
    match ids.len() {
        1 => Peer::Principal(ids.remove(0)),
        _ => Peer::NoSpiffeId,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(patterns: &[&str], tokens: &[(&str, &str)]) -> Auth {
        Auth {
            tls: None,
            patterns: patterns.iter().map(|p| Pattern(p.to_string())).collect(),
            tokens: tokens
                .iter()
                .map(|(var, t)| Token {
                    identity: format!("token:{var}"),
                    sha: Sha256::digest(t.as_bytes()).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn principals_match_exactly_or_by_prefix() {
        let a = auth(
            &[
                "spiffe://cluster.local/ns/shop/*",
                "spiffe://cluster.local/ns/ops/sa/console",
            ],
            &[],
        );
        let p = |s: &str| Peer::Principal(s.into());
        assert_eq!(
            a.check(&p("spiffe://cluster.local/ns/shop/sa/x"), None),
            Verdict::Allowed("spiffe://cluster.local/ns/shop/sa/x".into())
        );
        assert!(matches!(
            a.check(&p("spiffe://cluster.local/ns/ops/sa/console2"), None),
            Verdict::Forbidden(_)
        ));
        assert!(matches!(
            a.check(&Peer::NoSpiffeId, None),
            Verdict::Forbidden(_)
        ));
        assert_eq!(
            a.check(&Peer::Anonymous, None),
            Verdict::Unauthenticated("a client certificate is required")
        );
    }

    #[test]
    fn tokens_authenticate_as_their_variable() {
        let a = auth(&[], &[("A", "alpha"), ("B", "beta")]);
        assert_eq!(
            a.check(&Peer::Anonymous, Some(b"Bearer beta")),
            Verdict::Allowed("token:B".into())
        );
        assert_eq!(
            a.check(&Peer::Anonymous, Some(b"Bearer gamma")),
            Verdict::Unauthenticated("the bearer token is not accepted")
        );
        assert_eq!(
            a.check(&Peer::Anonymous, Some(b"Basic YWxwaGE=")),
            Verdict::Unauthenticated("authorization is not a bearer token")
        );
        assert!(matches!(
            a.check(&Peer::Anonymous, None),
            Verdict::Unauthenticated(_)
        ));
        assert_eq!(
            auth(&[], &[]).check(&Peer::Anonymous, None),
            Verdict::Allowed("anonymous".into())
        );
    }
}
