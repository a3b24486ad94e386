//! Page tokens: opaque, URL-safe strings that carry the keyset position of the last row of
//! a page (two integers) and a fingerprint of the filter and order that produced it, so a
//! token is only accepted by the same query. ListExecutions' positions are (created_at,
//! seq); ListExecutionEvents' are (revision, ordinal).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::domain::listing::{Cursor, ListFilter, SortOrder};
use crate::error::Error;

/// Version byte of the token layout.
const VERSION: u8 = 1;
/// version (1) + first key (8) + second key (8) + fingerprint (8).
const TOKEN_BYTES: usize = 25;

/// Fingerprint of a filter and an order.
pub(super) fn fingerprint(filter: &ListFilter, order: SortOrder) -> [u8; 8] {
    // serde_json writes object keys sorted, so equal filters give equal text.
    let canonical = serde_json::json!({
        "statuses": filter.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "key": filter.key,
        "user_key": filter.user_key,
        "created_after": filter.created_after.map(|t| t.timestamp_micros()),
        "created_before": filter.created_before.map(|t| t.timestamp_micros()),
        "execution_data": filter.execution_data,
        "order": matches!(order, SortOrder::OldestFirst),
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Fingerprint of ListExecutionEvents' query: the execution and the order.
pub(super) fn events_fingerprint(execution_seq: i64, ascending: bool) -> [u8; 8] {
    let canonical = format!("events:{execution_seq}:{ascending}");
    let digest = Sha256::digest(canonical.as_bytes());
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The token that resumes after `cursor`.
pub(super) fn encode(cursor: Cursor, fingerprint: [u8; 8]) -> String {
    encode_position(
        [cursor.created_at.timestamp_micros(), cursor.seq],
        fingerprint,
    )
}

/// The position a token resumes after (`None` for the empty token of a first page).
pub(super) fn decode(token: &str, fingerprint: [u8; 8]) -> Result<Option<Cursor>, Error> {
    let Some([created_at, seq]) = decode_position(token, fingerprint, "ListExecutions")? else {
        return Ok(None);
    };
    let created_at = chrono::DateTime::from_timestamp_micros(created_at)
        .ok_or_else(|| malformed("ListExecutions"))?;
    Ok(Some(Cursor { created_at, seq }))
}

/// The token that resumes after the keyset position `keys`.
pub(super) fn encode_position(keys: [i64; 2], fingerprint: [u8; 8]) -> String {
    let mut bytes = Vec::with_capacity(TOKEN_BYTES);
    bytes.push(VERSION);
    bytes.extend_from_slice(&keys[0].to_be_bytes());
    bytes.extend_from_slice(&keys[1].to_be_bytes());
    bytes.extend_from_slice(&fingerprint);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn malformed(issuer: &str) -> Error {
    Error::invalid(
        "page_token",
        "INVALID_PAGE_TOKEN",
        format!("page_token is not a token returned by {issuer}"),
    )
}

/// The keyset position a token of `issuer` (the RPC's name, for the error) resumes after;
/// `None` for the empty token of a first page.
pub(super) fn decode_position(
    token: &str,
    fingerprint: [u8; 8],
    issuer: &str,
) -> Result<Option<[i64; 2]>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| malformed(issuer))?;
    if bytes.len() != TOKEN_BYTES || bytes[0] != VERSION {
        return Err(malformed(issuer));
    }
    // The length was checked above: each range is 8 bytes.
    let field = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut out = [0; 8];
        out.copy_from_slice(&bytes[range]);
        out
    };
    if field(17..25) != fingerprint {
        return Err(Error::invalid(
            "page_token",
            "PAGE_TOKEN_FILTER_MISMATCH",
            "page_token was issued for other filters or another order; start from the first page",
        ));
    }
    Ok(Some([
        i64::from_be_bytes(field(1..9)),
        i64::from_be_bytes(field(9..17)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            created_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            seq: 42,
        }
    }

    #[test]
    fn round_trips_with_the_same_filter() {
        let f = fingerprint(&ListFilter::default(), SortOrder::NewestFirst);
        let token = encode(cursor(), f);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode(&token, f).unwrap(), Some(cursor()));
        assert_eq!(decode("", f).unwrap(), None);
    }

    #[test]
    fn refuses_another_filter_or_order_and_garbage() {
        let filter = ListFilter::default();
        let token = encode(cursor(), fingerprint(&filter, SortOrder::NewestFirst));
        let other_order = fingerprint(&filter, SortOrder::OldestFirst);
        let other_key = fingerprint(
            &ListFilter {
                key: Some("k".into()),
                ..ListFilter::default()
            },
            SortOrder::NewestFirst,
        );
        for f in [other_order, other_key] {
            let Error::InvalidField { reason, .. } = decode(&token, f).unwrap_err() else {
                panic!("expected a field error");
            };
            assert_eq!(reason, "PAGE_TOKEN_FILTER_MISMATCH");
        }
        for garbage in ["x", "!!!", &token[..token.len() - 2]] {
            let Error::InvalidField { reason, .. } =
                decode(garbage, fingerprint(&filter, SortOrder::NewestFirst)).unwrap_err()
            else {
                panic!("expected a field error");
            };
            assert_eq!(reason, "INVALID_PAGE_TOKEN");
        }
    }
}
