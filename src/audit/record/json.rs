//! A record's JSON line, written field by field in the wire order: the
//! bytes `serde_json` would write for the record's serde form (the tests
//! check they are the same), without its per-value dispatch and with a
//! string copy that escapes only when it must.
//!
//! A record is written in two parts around the place admission stamps it
//! (`emitter`, `seq`, `prev` follow `kind` and `ts`): [`Prepared`] holds
//! both, so a record can be built and written where the request finished
//! and stamped later, on the thread that chains.

use escape::escaped;

use super::{
    CloseReason, Decision, Destination, Fields, Kind, LossReason, Plugin, Reason, Record, Request,
    Response, Route, Sample, Source, Tls,
};

/// A member name as [`Obj::key`] writes it: `"name":`, made at compile time.
macro_rules! k {
    ($name:literal) => {
        concat!("\"", $name, "\":")
    };
}

/// A record written up to its stamp and after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    bytes: Vec<u8>,
    /// Where the stamp goes: `bytes[..split]` is `{"kind":…,"ts":…`.
    split: usize,
}

impl Prepared {
    /// Writes `record`; its `emitter`, `seq` and `prev` are left to the stamp.
    pub fn of(record: &Record) -> Prepared {
        Prepared::write(record, None)
    }

    /// Writes `record`, taking its `source`, `destination` and `tls`
    /// members as [`connection`] wrote them (the record's own are unset).
    pub fn with_connection(record: &Record, written: &[u8]) -> Prepared {
        Prepared::write(record, Some(written))
    }

    fn write(record: &Record, connection: Option<&[u8]>) -> Prepared {
        // A request record with a usual capture is 1-1.5 KiB, its stamp
        // (emitter, seq, prev) under 160 bytes.
        let mut bytes = Vec::with_capacity(2048);
        head(record, &mut bytes);
        let split = bytes.len();
        rest(record, connection, &mut bytes);
        Prepared { bytes, split }
    }

    /// The line with `stamp` written between the two parts, in the
    /// record's own buffer: what follows the stamp moves up, nothing is
    /// allocated when the buffer has room (it is made with room for one).
    pub fn into_stamped(self, stamp: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let Prepared { mut bytes, split } = self;
        let end = bytes.len();
        stamp(&mut bytes);
        let n = bytes.len() - end;
        // [head][rest][stamp] -> [head][stamp][rest]
        bytes[split..].rotate_right(n);
        bytes
    }
}

/// The whole record, its own `emitter`, `seq` and `prev` included.
pub fn to_vec(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    head(record, &mut out);
    stamp(
        record.emitter.as_deref(),
        record.seq,
        record.prev.as_deref(),
        &mut out,
    );
    rest(record, None, &mut out);
    out
}

/// `emitter`, `seq`, `prev` as the record carries them (each when present).
pub fn stamp(emitter: Option<&str>, seq: Option<u64>, prev: Option<&str>, out: &mut Vec<u8>) {
    let mut o = Obj { out, open: true };
    o.opt_str(k!("emitter"), emitter);
    o.opt_u64(k!("seq"), seq);
    o.opt_str(k!("prev"), prev);
}

fn head(r: &Record, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut o = Obj { out, open: false };
    o.str(
        k!("kind"),
        match r.kind {
            Kind::Request => "request",
            Kind::Loss => "loss",
            Kind::Seal => "seal",
            Kind::Close => "close",
        },
    );
    o.str(k!("ts"), &r.ts);
}

/// `record`'s `source`, `destination` and `tls` members, without a
/// leading comma (empty when it has none), for [`Prepared::with_connection`].
pub fn connection(r: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    connection_members(
        r,
        &mut Obj {
            out: &mut out,
            open: false,
        },
    );
    out
}

fn connection_members(r: &Record, o: &mut Obj) {
    if let Some(s) = &r.source {
        o.object(k!("source"), |o| source(s, o));
    }
    if let Some(d) = &r.destination {
        o.object(k!("destination"), |o| destination(d, o));
    }
    if let Some(t) = &r.tls {
        o.object(k!("tls"), |o| tls(t, o));
    }
}

/// Everything after the stamp; `connection`: the connection's members as
/// [`connection`] wrote them, else the record's own.
fn rest(r: &Record, connection: Option<&[u8]>, out: &mut Vec<u8>) {
    let mut o = Obj { out, open: true };
    o.opt_str(k!("request_id"), r.request_id.as_deref());
    o.opt_str(k!("trace_id"), r.trace_id.as_deref());
    o.opt_str(k!("span_id"), r.span_id.as_deref());
    match connection {
        Some(written) if !written.is_empty() => {
            o.out.push(b',');
            o.out.extend_from_slice(written);
        }
        Some(_) => {}
        None => connection_members(r, &mut o),
    }
    if let Some(u) = &r.user {
        o.object(k!("user"), |o| {
            for (k, v) in &u.0 {
                o.named(k);
                serde_value(v, o.out);
            }
        });
    }
    if let Some(q) = &r.request {
        o.object(k!("request"), |o| request(q, o));
    }
    if let Some(p) = &r.response {
        o.object(k!("response"), |o| response(p, o));
    }
    if let Some(rt) = &r.route {
        o.object(k!("route"), |o| route(rt, o));
    }
    if let Some(d) = r.duration_ms {
        o.f64(k!("duration_ms"), d);
    }
    if let Some(d) = r.decision {
        o.str(
            k!("decision"),
            match d {
                Decision::Allowed => "allowed",
                Decision::Denied => "denied",
                Decision::Error => "error",
            },
        );
    }
    o.opt_str(k!("violation"), r.violation.as_deref());
    if let Some(s) = &r.sample {
        o.object(k!("sample"), |o| sample(s, o));
    }
    o.strings(k!("redacted"), &r.redacted);
    o.strings(k!("degraded"), &r.degraded);
    if let Some(reason) = r.reason {
        o.str(k!("reason"), reason_name(reason));
    }
    o.opt_u64(k!("count"), r.count);
    o.opt_u64(k!("from_seq"), r.from_seq);
    o.opt_u64(k!("to_seq"), r.to_seq);
    o.opt_str(k!("since"), r.since.as_deref());
    o.opt_str(k!("until"), r.until.as_deref());
    if let Some(p) = &r.plugin {
        o.object(k!("plugin"), |o| plugin(p, o));
    }
    o.out.push(b'}');
}

fn reason_name(r: Reason) -> &'static str {
    match r {
        Reason::Loss(LossReason::BufferFull) => "buffer_full",
        Reason::Loss(LossReason::RateLimited) => "rate_limited",
        Reason::Loss(LossReason::Rejected) => "rejected",
        Reason::Close(CloseReason::Shutdown) => "shutdown",
        Reason::Close(CloseReason::Reconfigure) => "reconfigure",
    }
}

fn source(s: &Source, o: &mut Obj) {
    o.opt_str(k!("address"), s.address.as_deref());
    o.opt_str(k!("principal"), s.principal.as_deref());
    o.opt_str(k!("trust_domain"), s.trust_domain.as_deref());
    o.opt_str(k!("namespace"), s.namespace.as_deref());
    o.opt_str(k!("service_account"), s.service_account.as_deref());
    o.opt_str(k!("subject"), s.subject.as_deref());
    o.opt_str(k!("cert_sha256"), s.cert_sha256.as_deref());
}

fn destination(d: &Destination, o: &mut Obj) {
    o.opt_str(k!("address"), d.address.as_deref());
    o.opt_str(k!("principal"), d.principal.as_deref());
}

fn tls(t: &Tls, o: &mut Obj) {
    o.key(k!("mtls"));
    o.out
        .extend_from_slice(if t.mtls { b"true" } else { b"false" });
    o.opt_str(k!("version"), t.version.as_deref());
    o.opt_str(k!("sni"), t.sni.as_deref());
}

fn headers(h: &Option<Fields<String>>, o: &mut Obj) {
    if let Some(h) = h {
        o.object(k!("headers"), |o| {
            for (k, v) in &h.0 {
                o.named(k);
                escaped(v, o.out);
            }
        });
    }
}

fn request(q: &Request, o: &mut Obj) {
    o.opt_str(k!("method"), q.method.as_deref());
    o.opt_str(k!("scheme"), q.scheme.as_deref());
    o.opt_str(k!("authority"), q.authority.as_deref());
    o.opt_str(k!("path"), q.path.as_deref());
    o.opt_str(k!("query"), q.query.as_deref());
    o.opt_str(k!("protocol"), q.protocol.as_deref());
    headers(&q.headers, o);
    o.opt_u64(k!("bytes"), q.bytes);
}

fn response(p: &Response, o: &mut Obj) {
    o.opt_u64(k!("code"), p.code.map(u64::from));
    o.opt_str(k!("code_details"), p.code_details.as_deref());
    o.strings(k!("flags"), &p.flags);
    headers(&p.headers, o);
    o.opt_u64(k!("bytes"), p.bytes);
}

fn route(r: &Route, o: &mut Obj) {
    o.opt_str(k!("name"), r.name.as_deref());
    o.opt_str(k!("cluster"), r.cluster.as_deref());
    o.opt_str(k!("virtual_host"), r.virtual_host.as_deref());
}

fn sample(s: &Sample, o: &mut Obj) {
    o.opt_str(k!("rule"), s.rule.as_deref());
    o.f64(k!("rate"), s.rate);
}

fn plugin(p: &Plugin, o: &mut Obj) {
    o.str(k!("version"), &p.version);
    o.str(k!("config"), &p.config);
}

/// A value `serde_json` writes itself (claims, numbers): the same bytes by
/// construction. Writing into a `Vec` cannot fail; `null` if it ever did.
fn serde_value<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    let mark = out.len();
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
}

/// The members of one JSON object being written.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    /// A member was written: the next one needs a comma.
    open: bool,
}

impl Obj<'_> {
    /// A member's name: one of the record's own, which need no escape,
    /// given quoted and with its colon ([`k!`]).
    fn key(&mut self, k: &'static str) {
        debug_assert!(
            k.starts_with('"') && k.ends_with("\":"),
            "{k}: not made by k!"
        );
        if self.open {
            self.out.push(b',');
        }
        self.open = true;
        self.out.extend_from_slice(k.as_bytes());
    }
    /// A member named by the request (a header or claim name): escaped.
    fn named(&mut self, k: &str) {
        if self.open {
            self.out.push(b',');
        }
        self.open = true;
        escaped(k, self.out);
        self.out.push(b':');
    }
    fn str(&mut self, k: &'static str, v: &str) {
        self.key(k);
        escaped(v, self.out);
    }
    fn opt_str(&mut self, k: &'static str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }
    fn opt_u64(&mut self, k: &'static str, v: Option<u64>) {
        if let Some(v) = v {
            self.key(k);
            let mut b = itoa::Buffer::new();
            self.out.extend_from_slice(b.format(v).as_bytes());
        }
    }
    fn f64(&mut self, k: &'static str, v: f64) {
        self.key(k);
        serde_value(&v, self.out);
    }
    /// A list of strings, omitted when empty.
    fn strings(&mut self, k: &'static str, v: &[String]) {
        if v.is_empty() {
            return;
        }
        self.key(k);
        self.out.push(b'[');
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            escaped(s, self.out);
        }
        self.out.push(b']');
    }
    fn object(&mut self, k: &'static str, members: impl FnOnce(&mut Obj)) {
        self.key(k);
        self.out.push(b'{');
        members(&mut Obj {
            out: self.out,
            open: false,
        });
        self.out.push(b'}');
    }
}

mod escape;

#[cfg(test)]
mod tests;
