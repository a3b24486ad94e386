//! Execution ids: the public UUIDv7, the short hashid derived from the internal sequence
//! (with the sqids library), and parsing a caller's reference that may be either.

use std::fmt;

use sqids::Sqids;
use uuid::Uuid;

/// Public id of an execution: a UUIDv7, so ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(Uuid);

impl ExecutionId {
    /// Wraps a UUID.
    pub fn new(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// The UUID inside.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// How a caller names an execution: by UUID or by hashid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecutionRef {
    /// By public UUID.
    Id(ExecutionId),
    /// By hashid.
    Hashid(Hashid),
}

impl fmt::Display for ExecutionRef {
    /// The execution as the caller named it (the UUID in its canonical spelling).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Hashid(hashid) => f.write_str(hashid.as_str()),
        }
    }
}

/// A well-formed hashid as a caller sent it, and the sequence number it encodes, if it
/// is the canonical encoding of one. (Kept inline, so that references stay `Copy`.)
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hashid {
    seq: Option<i64>,
    text: [u8; MAX_HASHID_CHARS],
    len: u8,
}

impl Hashid {
    /// The sequence number it encodes; `None` when it encodes none (it then names no
    /// execution).
    pub fn seq(&self) -> Option<i64> {
        self.seq
    }

    /// The hashid as the caller sent it.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters and digits are ever stored (see `HashidCodec::parse_ref`).
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for Hashid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hashid({:?} = {:?})", self.as_str(), self.seq)
    }
}

/// The reference is neither a UUID nor a possible hashid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "an execution id is a UUID or a hashid (5 to {MAX_HASHID_CHARS} lowercase letters and digits)"
)]
pub struct MalformedRef;

/// Alphabet of hashids: lowercase letters and digits (sqids shuffles it).
const HASHID_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
/// Shortest hashid.
pub const MIN_HASHID_CHARS: usize = 5;
/// Longest string taken for a hashid (an i64 encodes to far fewer).
pub const MAX_HASHID_CHARS: usize = 32;

/// Encodes sequence numbers as hashids and back.
#[derive(Debug)]
pub struct HashidCodec {
    sqids: Sqids,
    /// The hashid of the largest sequence number, encoded once: every start measures the
    /// largest form its execution can take with it (`grpc::size`).
    of_largest: String,
}

impl Default for HashidCodec {
    #[allow(
        clippy::expect_used,
        reason = "constant settings; the unit tests build the codec"
    )]
    fn default() -> Self {
        let sqids = Sqids::builder()
            .alphabet(HASHID_ALPHABET.chars().collect())
            .min_length(MIN_HASHID_CHARS as u8)
            .build()
            .expect("the alphabet and length are valid constants");
        let of_largest = sqids.encode(&[i64::MAX as u64]).unwrap_or_default();
        Self { sqids, of_largest }
    }
}

impl HashidCodec {
    /// The hashid of a sequence number (sequence numbers start at 1).
    pub fn encode(&self, seq: i64) -> String {
        if seq == i64::MAX {
            return self.of_largest.clone();
        }
        let n = u64::try_from(seq).unwrap_or_default();
        self.sqids.encode(&[n]).unwrap_or_default()
    }

    /// The sequence number of a hashid, if it is the canonical encoding of exactly one.
    pub fn decode(&self, hashid: &str) -> Option<i64> {
        match self.sqids.decode(hashid).as_slice() {
            [n] => {
                let seq = i64::try_from(*n).ok()?;
                (self.encode(seq) == hashid).then_some(seq)
            }
            _ => None,
        }
    }

    /// Parses a caller's reference. A UUID is taken as is; a string that could be a hashid
    /// is kept as sent, with the sequence number it decodes to. One that decodes to
    /// nothing names no execution (NOT_FOUND, not INVALID_ARGUMENT, since it is
    /// well-formed).
    pub fn parse_ref(&self, raw: &str) -> Result<ExecutionRef, MalformedRef> {
        if let Ok(uuid) = Uuid::try_parse(raw) {
            return Ok(ExecutionRef::Id(ExecutionId(uuid)));
        }
        let possible = (MIN_HASHID_CHARS..=MAX_HASHID_CHARS).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !possible {
            return Err(MalformedRef);
        }
        let mut text = [0; MAX_HASHID_CHARS];
        text[..raw.len()].copy_from_slice(raw.as_bytes());
        Ok(ExecutionRef::Hashid(Hashid {
            seq: self.decode(raw),
            text,
            len: raw.len() as u8,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashids_are_short_lowercase_and_round_trip() {
        let codec = HashidCodec::default();
        let mut seen = std::collections::HashSet::new();
        for seq in (1..2_000).chain([i64::MAX / 2, i64::MAX]) {
            let h = codec.encode(seq);
            assert!(h.len() >= MIN_HASHID_CHARS, "{h}");
            assert!(
                h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{h}"
            );
            assert_eq!(codec.decode(&h), Some(seq));
            let ExecutionRef::Hashid(parsed) = codec.parse_ref(&h).unwrap() else {
                panic!("{h} is a hashid");
            };
            assert_eq!((parsed.seq(), parsed.as_str()), (Some(seq), h.as_str()));
            assert!(seen.insert(h));
        }
    }

    #[test]
    fn parses_uuids_and_refuses_garbage() {
        let codec = HashidCodec::default();
        let id = "0199b7a3-b994-7588-82bf-549a3600bc27";
        assert_eq!(
            codec.parse_ref(id).unwrap(),
            ExecutionRef::Id(ExecutionId(Uuid::parse_str(id).unwrap()))
        );
        for bad in [
            "",
            "abc",
            "UPPER",
            "has space",
            "x-y-z-w",
            &"a".repeat(33),
            "0199b7a3-b994",
        ] {
            assert_eq!(codec.parse_ref(bad), Err(MalformedRef), "{bad:?}");
        }
        // Well-formed but not the canonical encoding of anything: names no execution, and
        // is named as sent.
        let max = "z".repeat(MAX_HASHID_CHARS);
        for unknown in ["aaaaa", "aaaaaaaaaa", max.as_str()] {
            let parsed = codec.parse_ref(unknown).unwrap();
            assert!(matches!(parsed, ExecutionRef::Hashid(h) if h.seq().is_none()));
            assert_eq!(parsed.to_string(), unknown);
        }
    }
}
