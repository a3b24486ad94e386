//! WatchExecutions' cursors: opaque, URL-safe strings holding a point in commit order (see
//! `domain::feed`) and a fingerprint of the filter of the feed that handed it out, so a
//! cursor resumes only a feed with the same filter.
//!
//! Layout: version, fingerprint (8 bytes), kind, then the point: nothing (origin), the
//! counter (SQLite), or `xmin`, `xmax`, the number of transactions in progress and their
//! ids (PostgreSQL), each integer as 8 big-endian bytes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::page_token;
use crate::domain::feed::CommitPoint;
use crate::domain::listing::{ListFilter, SortOrder};
use crate::error::Error;

/// Version byte of the layout (page tokens use 1).
const VERSION: u8 = 2;
const ORIGIN: u8 = 0;
const COUNTER: u8 = 1;
const SNAPSHOT: u8 = 2;
/// Longest in-progress list accepted: PostgreSQL lists at most one transaction per
/// connection, and each id becomes a bound parameter of every catch-up page.
const MAX_IN_PROGRESS: usize = 4_096;

/// Fingerprint of a feed's filter.
pub(super) fn fingerprint(filter: &ListFilter) -> [u8; 8] {
    page_token::fingerprint(filter, SortOrder::NewestFirst)
}

/// The cursor that resumes a feed with `fingerprint` from `point`.
pub(super) fn encode(point: &CommitPoint, fingerprint: [u8; 8]) -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.push(VERSION);
    bytes.extend_from_slice(&fingerprint);
    match point {
        CommitPoint::Origin => bytes.push(ORIGIN),
        CommitPoint::Counter(counter) => {
            bytes.push(COUNTER);
            bytes.extend_from_slice(&counter.to_be_bytes());
        }
        CommitPoint::Snapshot {
            xmin,
            xmax,
            in_progress,
        } => {
            bytes.push(SNAPSHOT);
            for n in [*xmin, *xmax, in_progress.len() as i64]
                .into_iter()
                .chain(in_progress.iter().copied())
            {
                bytes.extend_from_slice(&n.to_be_bytes());
            }
        }
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

fn malformed() -> Error {
    Error::invalid(
        "resume_cursor",
        "INVALID_RESUME_CURSOR",
        "resume_cursor is not a cursor handed out by WatchExecutions on this database",
    )
}

/// The point a cursor resumes from (`None` for the empty cursor: start with a snapshot),
/// if it was handed out by a feed with `fingerprint` on this kind of database.
pub(super) fn decode(
    cursor: &str,
    fingerprint: [u8; 8],
    postgres: bool,
) -> Result<Option<CommitPoint>, Error> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| malformed())?;
    if bytes.len() < 10 || bytes[0] != VERSION {
        return Err(malformed());
    }
    if bytes[1..9] != fingerprint {
        return Err(Error::invalid(
            "resume_cursor",
            "RESUME_CURSOR_FILTER_MISMATCH",
            "resume_cursor was handed out by a feed with other filters; resume with the same \
             filters, or start without a cursor",
        ));
    }
    let numbers = &bytes[10..];
    if numbers.len() % 8 != 0 {
        return Err(malformed());
    }
    let numbers: Vec<i64> = numbers
        .chunks_exact(8)
        .map(|c| {
            let mut n = [0; 8];
            n.copy_from_slice(c);
            i64::from_be_bytes(n)
        })
        .collect();
    let point = match (bytes[9], numbers.as_slice()) {
        (ORIGIN, []) => CommitPoint::Origin,
        (COUNTER, [counter]) if !postgres && *counter >= 0 => CommitPoint::Counter(*counter),
        (SNAPSHOT, [xmin, xmax, n, rest @ ..])
            if postgres
                && 0 <= *xmin
                && xmin <= xmax
                && usize::try_from(*n).is_ok_and(|n| n == rest.len() && n <= MAX_IN_PROGRESS)
                && rest.windows(2).all(|w| w[0] < w[1])
                && rest.iter().all(|xid| xmin <= xid && xid < xmax) =>
        {
            CommitPoint::Snapshot {
                xmin: *xmin,
                xmax: *xmax,
                in_progress: rest.to_vec(),
            }
        }
        _ => return Err(malformed()),
    };
    Ok(Some(point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_of_point() {
        let f = fingerprint(&ListFilter::default());
        for (point, postgres) in [
            (CommitPoint::Origin, false),
            (CommitPoint::Counter(42), false),
            (CommitPoint::from_postgres("10:20:12,15").unwrap(), true),
            (CommitPoint::from_postgres("10:20:").unwrap(), true),
        ] {
            let cursor = encode(&point, f);
            assert_eq!(decode(&cursor, f, postgres).unwrap(), Some(point));
        }
        assert_eq!(decode("", f, true).unwrap(), None);
    }

    #[test]
    fn refuses_other_filters_other_databases_and_garbage() {
        let f = fingerprint(&ListFilter::default());
        let other = fingerprint(&ListFilter {
            key: Some("k".into()),
            ..ListFilter::default()
        });
        let cursor = encode(&CommitPoint::Counter(3), f);
        let reason = |r: Result<Option<CommitPoint>, Error>| match r.unwrap_err() {
            Error::InvalidField { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(decode(&cursor, other, false)),
            "RESUME_CURSOR_FILTER_MISMATCH"
        );
        assert_eq!(reason(decode(&cursor, f, true)), "INVALID_RESUME_CURSOR");
        for garbage in ["x", "!!", &cursor[..cursor.len() - 3]] {
            assert_eq!(reason(decode(garbage, f, false)), "INVALID_RESUME_CURSOR");
        }
        let outside = encode(
            &CommitPoint::Snapshot {
                xmin: 10,
                xmax: 20,
                in_progress: vec![25],
            },
            f,
        );
        assert_eq!(reason(decode(&outside, f, true)), "INVALID_RESUME_CURSOR");
        let at_most = |n: i64| {
            encode(
                &CommitPoint::Snapshot {
                    xmin: 0,
                    xmax: n,
                    in_progress: (0..n).collect(),
                },
                f,
            )
        };
        assert!(decode(&at_most(MAX_IN_PROGRESS as i64), f, true).is_ok());
        assert_eq!(
            reason(decode(&at_most(MAX_IN_PROGRESS as i64 + 1), f, true)),
            "INVALID_RESUME_CURSOR",
            "a list past the bound"
        );
        let page_token = page_token::encode_position([1, 2], f);
        assert_eq!(
            reason(decode(&page_token, f, false)),
            "INVALID_RESUME_CURSOR"
        );
    }
}
