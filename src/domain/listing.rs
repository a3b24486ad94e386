//! What a list asks for: filters, order, page size and the keyset position to resume at.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::View;
use super::execution::Header;
use super::status::ExecutionStatus;

/// Page size when the caller asks for none.
pub const DEFAULT_PAGE_SIZE: u64 = 25;
/// Largest page; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: u64 = 500;

/// Filters of a list; every one that is set must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    /// Any of these statuses (empty: any status). Sorted, without duplicates.
    pub statuses: Vec<ExecutionStatus>,
    /// This workflow key.
    pub key: Option<String>,
    /// This tenant.
    pub user_key: Option<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Top-level keys of `execution_data` that must have these values.
    pub execution_data: BTreeMap<String, serde_json::Value>,
}

/// Order of a list, by creation time (ties broken by sequence number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// `created_at desc`, the default.
    #[default]
    NewestFirst,
    /// `created_at asc`.
    OldestFirst,
}

impl SortOrder {
    /// Parses `order_by`: empty, `created_at desc` or `created_at asc` (any case, any
    /// spacing).
    pub fn parse(order_by: &str) -> Option<Self> {
        let words: Vec<String> = order_by
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        match words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [] | ["created_at"] | ["created_at", "desc"] => Some(Self::NewestFirst),
            ["created_at", "asc"] => Some(Self::OldestFirst),
            _ => None,
        }
    }
}

/// A position in the keyset order: the last execution of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Its creation time.
    pub created_at: DateTime<Utc>,
    /// Its sequence number.
    pub seq: i64,
}

impl Cursor {
    /// The position of an execution.
    pub fn of(header: &Header) -> Self {
        Self {
            created_at: header.created_at,
            seq: header.seq,
        }
    }
}

/// One page request, ready for the database.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    /// What must match.
    pub filter: ListFilter,
    /// In which order.
    pub order: SortOrder,
    /// Resume strictly after this position.
    pub after: Option<Cursor>,
    /// Most rows to return.
    pub limit: u64,
    /// How much of each execution.
    pub view: View,
}

/// The page size a request gets: 0 means the default, anything above the maximum is
/// clamped, a negative size is refused (`None`).
pub fn page_size(requested: i32) -> Option<u64> {
    match requested {
        n if n < 0 => None,
        0 => Some(DEFAULT_PAGE_SIZE),
        n => Some((n as u64).min(MAX_PAGE_SIZE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_rules() {
        assert_eq!(page_size(0), Some(25));
        assert_eq!(page_size(7), Some(7));
        assert_eq!(page_size(500), Some(500));
        assert_eq!(page_size(501), Some(500));
        assert_eq!(page_size(-1), None);
    }

    #[test]
    fn order_by_spellings() {
        assert_eq!(SortOrder::parse(""), Some(SortOrder::NewestFirst));
        assert_eq!(
            SortOrder::parse("created_at desc"),
            Some(SortOrder::NewestFirst)
        );
        assert_eq!(
            SortOrder::parse(" Created_At  ASC "),
            Some(SortOrder::OldestFirst)
        );
        assert_eq!(SortOrder::parse("name asc"), None);
        assert_eq!(SortOrder::parse("created_at sideways"), None);
    }
}
