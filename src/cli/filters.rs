//! The filters that `list` and `count` share (those of ListExecutions), and the
//! `--data KEY=VALUE` pairs that `start`, `list`, `count` and `stop --event` take.

use clap::Args;

use crate::proto::v1 as pb;

/// `--data KEY=VALUE`: VALUE is read as JSON when it is JSON (`n=3` is a number,
/// `ok=true` a boolean, `tags=["a"]` a list, `id='"3"'` the string "3"), as a string
/// otherwise (`region=eu`).
pub fn parse_data(pair: &str) -> Result<(String, serde_json::Value), String> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| format!("`{pair}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{pair}` has no key before `=`"));
    }
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

/// The pairs as a protobuf Struct; `None` when there are none.
pub fn data_struct(pairs: &[(String, serde_json::Value)]) -> Option<prost_types::Struct> {
    if pairs.is_empty() {
        return None;
    }
    let map: serde_json::Map<String, serde_json::Value> = pairs.iter().cloned().collect();
    Some(crate::grpc::json_to_struct(&map))
}

/// An execution status by name: `running`, `RUNNING` or `EXECUTION_STATUS_RUNNING`.
pub fn parse_status(name: &str) -> Result<pb::ExecutionStatus, String> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("EXECUTION_STATUS_") {
        upper
    } else {
        format!("EXECUTION_STATUS_{upper}")
    };
    pb::ExecutionStatus::from_str_name(&full)
        .filter(|s| *s != pb::ExecutionStatus::Unspecified)
        .ok_or_else(|| format!("`{name}` is not a status: running, completed, failed or stopped"))
}

/// An RFC 3339 time, e.g. `2025-10-06T03:49:44Z`.
pub fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    let time = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("`{text}` is not an RFC 3339 time (2025-10-06T03:49:44Z): {e}"))?;
    Ok(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or_default(),
    })
}

/// Filters of `list` and `count`: every one given must match.
#[derive(Clone, Debug, Default, Args)]
pub struct Filters {
    /// Only executions with this status (running, completed, failed, stopped); repeat
    /// for several.
    #[arg(long = "status", value_parser = parse_status)]
    pub statuses: Vec<pb::ExecutionStatus>,
    /// Only executions of this workflow key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only executions of this tenant.
    #[arg(long)]
    pub user_key: Option<String>,
    /// Only executions whose execution_data has KEY equal to VALUE; repeat for several.
    #[arg(long = "data", value_name = "KEY=VALUE", value_parser = parse_data)]
    pub data: Vec<(String, serde_json::Value)>,
    /// Only executions created at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub created_after: Option<prost_types::Timestamp>,
    /// Only executions created before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub created_before: Option<prost_types::Timestamp>,
}

impl Filters {
    /// A ListExecutions request with these filters.
    pub fn list_request(&self) -> pb::ListExecutionsRequest {
        pb::ListExecutionsRequest {
            statuses: self.statuses.iter().map(|s| *s as i32).collect(),
            key: self.key.clone().unwrap_or_default(),
            user_key: self.user_key.clone().unwrap_or_default(),
            created_after: self.created_after,
            created_before: self.created_before,
            execution_data: data_struct(&self.data),
            ..Default::default()
        }
    }

    /// A CountExecutions request with these filters.
    pub fn count_request(&self) -> pb::CountExecutionsRequest {
        let list = self.list_request();
        pb::CountExecutionsRequest {
            statuses: list.statuses,
            key: list.key,
            user_key: list.user_key,
            created_after: list.created_after,
            created_before: list.created_before,
            execution_data: list.execution_data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_values_are_json_when_they_are_json() {
        assert_eq!(
            parse_data("region=eu").unwrap(),
            ("region".into(), serde_json::json!("eu"))
        );
        assert_eq!(parse_data("n=3").unwrap().1, serde_json::json!(3));
        assert_eq!(parse_data("id=\"3\"").unwrap().1, serde_json::json!("3"));
        assert_eq!(parse_data("e=").unwrap().1, serde_json::json!(""));
        assert_eq!(parse_data("url=a=b").unwrap().1, serde_json::json!("a=b"));
        assert!(parse_data("novalue").is_err());
        assert!(parse_data("=1").is_err());
    }

    #[test]
    fn statuses_by_any_name() {
        for name in ["running", "RUNNING", "EXECUTION_STATUS_RUNNING"] {
            assert_eq!(parse_status(name).unwrap(), pb::ExecutionStatus::Running);
        }
        assert!(parse_status("unspecified").is_err());
        assert!(parse_status("done").is_err());
        assert_eq!(
            parse_time("2025-10-06T03:49:44Z").unwrap().seconds,
            1_759_722_584
        );
        assert!(parse_time("yesterday").is_err());
    }
}
