//! The client side: the system `curl`, presenting a workload's certificate
//! over mTLS (or none, over plaintext). Verbose output gives the response
//! headers and the TLS version the client negotiated.

use super::envoy::Envoy;
use super::pki;
use std::process::Command;

pub const SERVER_NAME: &str = "backend.default.svc";

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// spiffe://cluster.local/ns/shop/sa/frontend, subject O=acme,CN=frontend
    Frontend,
    /// spiffe://cluster.local/ns/batch/sa/reporter, subject CN=reporter
    Reporter,
    /// Claims the frontend's identity with a certificate from a foreign CA.
    Rogue,
    /// No client certificate at all.
    Anonymous,
}

impl Workload {
    pub fn principal(self) -> &'static str {
        match self {
            Workload::Frontend | Workload::Rogue => "spiffe://cluster.local/ns/shop/sa/frontend",
            Workload::Reporter => "spiffe://cluster.local/ns/batch/sa/reporter",
            Workload::Anonymous => "",
        }
    }

    fn cert_name(self) -> Option<&'static str> {
        match self {
            Workload::Frontend => Some("frontend"),
            Workload::Reporter => Some("reporter"),
            Workload::Rogue => Some("rogue"),
            Workload::Anonymous => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Reply {
    /// curl's exit code: 0 when an HTTP response arrived.
    pub exit_code: i32,
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// e.g. `TLSv1.3`, from curl's own report of the handshake.
    pub tls_version: Option<String>,
    pub stderr: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The x-request-id Envoy generated (echoed on every response).
    pub fn request_id(&self) -> &str {
        self.header("x-request-id")
            .unwrap_or_else(|| panic!("no x-request-id in reply: {self:#?}"))
    }
}

impl Envoy {
    /// GET `path` over mTLS as `who`, with SNI backend.default.svc.
    pub fn mtls(&self, who: Workload, path: &str) -> Reply {
        self.mtls_with(who, path, &[])
    }

    pub fn mtls_with(&self, who: Workload, path: &str, headers: &[(&str, &str)]) -> Reply {
        let dir = pki();
        let mut args: Vec<String> = vec![
            "--cacert".into(),
            dir.join("ca.pem").display().to_string(),
            "--resolve".into(),
            format!("{SERVER_NAME}:{}:127.0.0.1", self.mtls_port),
        ];
        if let Some(name) = who.cert_name() {
            args.push("--cert".into());
            args.push(dir.join(format!("{name}.pem")).display().to_string());
            args.push("--key".into());
            args.push(dir.join(format!("{name}-key.pem")).display().to_string());
        }
        curl(
            &args,
            &format!("https://{SERVER_NAME}:{}{path}", self.mtls_port),
            headers,
        )
    }

    /// `n` GETs of `{prefix}/{i}` on the plaintext listener, one after the
    /// other, each of which must be answered 200; their request ids.
    pub fn plain_ok(&self, prefix: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let reply = self.plain(&format!("{prefix}/{i}"));
                assert_eq!(reply.status, 200, "{reply:#?}");
                reply.request_id().to_string()
            })
            .collect()
    }

    /// GET `path` on the plaintext listener.
    pub fn plain(&self, path: &str) -> Reply {
        curl(
            &[],
            &format!("http://127.0.0.1:{}{path}", self.plain_port),
            &[],
        )
    }
}

pub fn curl(args: &[String], url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-v", "--http1.1", "--max-time", "10"])
        .args(args);
    for (name, value) in headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    let out = cmd
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running curl: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut status = 0;
    let mut reply_headers = Vec::new();
    let mut tls_version = None;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("* SSL connection using ") {
            tls_version = rest.split(' ').next().map(str::to_string);
        } else if let Some(rest) = line.strip_prefix("< HTTP/") {
            status = rest
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        } else if let Some((name, value)) = line.strip_prefix("< ").and_then(|h| h.split_once(':'))
        {
            reply_headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Reply {
        exit_code: out.status.code().unwrap_or(-1),
        status,
        headers: reply_headers,
        body: String::from_utf8_lossy(&out.stdout).into_owned(),
        tls_version,
        stderr,
    }
}
