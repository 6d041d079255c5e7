//! One stored record reduced to what the checks need: its seq, line and
//! link, and the facts of a loss, close or seal record.

use mesh_audit::audit::record::{Kind, LossReason};
use serde::Serialize;

/// One stored record, reduced to what the checks need.
pub struct Entry {
    pub seq: u64,
    pub line: usize,
    pub link: [u8; 32],
    pub prev: Option<String>,
    pub kind: Kind,
    pub loss: Option<Loss>,
    pub close: Option<String>,
    pub seal: Option<SealCheck>,
    /// `destination.principal` of a request record.
    pub destination: Option<String>,
}

/// A seal as read, with its signature already checked against the keyring.
pub enum SealCheck {
    Malformed(String),
    Ok {
        from_seq: u64,
        to_seq: u64,
        /// Key id of a signed seal.
        key_id: Option<String>,
        signature: Signature,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// No `sig` member.
    Unsigned,
    /// Signed, but no keyring to check it against.
    NotChecked,
    Valid,
    Invalid,
    UnknownKey,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Loss {
    pub seq: u64,
    pub reason: LossReason,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_seq: Option<u64>,
}
