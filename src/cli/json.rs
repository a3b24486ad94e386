//! Canonical proto3 JSON of the API's messages, the same that grpcurl prints and reads:
//! lowerCamelCase field names, 64-bit integers as strings, enums by name, well-known
//! types (Timestamp, Struct) in their JSON forms, and fields at their zero value left out.
//!
//! The mapping is not written here: prost-reflect applies it from the file descriptor
//! set that build.rs produces (the one server reflection serves), so it follows the
//! proto file exactly.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

/// The descriptors of the package and of the well-known types it imports.
static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(crate::proto::v1::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
});

/// Why a message could not be turned into JSON or read from it.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The embedded descriptors do not describe the message (a build problem).
    #[error("no descriptor for {0}: {1}")]
    Descriptor(String, String),
    /// The JSON does not describe a message of that type.
    #[error("not a valid {0}: {1}")]
    Invalid(String, String),
}

fn descriptor(name: &str) -> Result<prost_reflect::MessageDescriptor, JsonError> {
    let pool = POOL
        .as_ref()
        .map_err(|e| JsonError::Descriptor(name.to_owned(), e.clone()))?;
    pool.get_message_by_name(name)
        .ok_or_else(|| JsonError::Descriptor(name.to_owned(), "unknown message".to_owned()))
}

/// `message` as canonical proto3 JSON.
pub fn to_json<M: prost::Message + prost::Name>(
    message: &M,
) -> Result<serde_json::Value, JsonError> {
    let name = M::full_name();
    let dynamic = DynamicMessage::decode(descriptor(&name)?, message.encode_to_vec().as_slice())
        .map_err(|e| JsonError::Invalid(name.clone(), e.to_string()))?;
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|e| JsonError::Invalid(name, e.to_string()))
}

/// A message read from its proto3 JSON form (either spelling of field names; unknown
/// fields refused).
pub fn from_json<M: prost::Message + prost::Name + Default>(
    json: &serde_json::Value,
) -> Result<M, JsonError> {
    let name = M::full_name();
    let dynamic = DynamicMessage::deserialize_with_options(
        descriptor(&name)?,
        json,
        &DeserializeOptions::new(),
    )
    .map_err(|e| JsonError::Invalid(name.clone(), e.to_string()))?;
    dynamic
        .transcode_to::<M>()
        .map_err(|e| JsonError::Invalid(name, e.to_string()))
}

/// `message` as grpcurl prints it: indented JSON, fields in the proto file's order.
pub fn pretty<M: prost::Message + prost::Name>(message: &M) -> Result<String, JsonError> {
    let mut out = Vec::new();
    write(message, &mut serde_json::Serializer::pretty(&mut out))?;
    String::from_utf8(out).map_err(|e| JsonError::Invalid(M::full_name(), e.to_string()))
}

/// `message` as one line of JSON, fields in the proto file's order.
pub fn line<M: prost::Message + prost::Name>(message: &M) -> Result<String, JsonError> {
    let mut out = Vec::new();
    write(message, &mut serde_json::Serializer::new(&mut out))?;
    String::from_utf8(out).map_err(|e| JsonError::Invalid(M::full_name(), e.to_string()))
}

/// Serializes straight to text rather than through `serde_json::Value`, whose objects
/// would sort the fields by name.
fn write<'a, M, F>(
    message: &M,
    serializer: &'a mut serde_json::Serializer<&'a mut Vec<u8>, F>,
) -> Result<(), JsonError>
where
    M: prost::Message + prost::Name,
    F: serde_json::ser::Formatter,
{
    let name = M::full_name();
    let dynamic = DynamicMessage::decode(descriptor(&name)?, message.encode_to_vec().as_slice())
        .map_err(|e| JsonError::Invalid(name.clone(), e.to_string()))?;
    dynamic
        .serialize_with_options(serializer, &SerializeOptions::new())
        .map_err(|e| JsonError::Invalid(name, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1 as pb;

    /// The names, 64-bit integers, enums and well-known types that grpcurl prints.
    #[test]
    fn canonical_json_as_grpcurl_prints_it() {
        let event = pb::WatchExecutionResponse {
            kind: pb::WatchEventKind::Snapshot as i32,
            revision: 7,
            execution: Some(pb::Execution {
                hashid: "v8brp".into(),
                created_at_utc: "2025-10-06T03:49:44Z".into(),
                status: pb::ExecutionStatus::Running as i32,
                completed_actions_count: 0,
                ..Default::default()
            }),
            sent_at: Some(prost_types::Timestamp {
                seconds: 1_759_722_584,
                nanos: 0,
            }),
        };
        let json = to_json(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "WATCH_EVENT_KIND_SNAPSHOT",
                "revision": "7",
                "execution": {
                    "hashid": "v8brp",
                    "createdAtUtc": "2025-10-06T03:49:44Z",
                    "status": "EXECUTION_STATUS_RUNNING",
                },
                "sentAt": "2025-10-06T03:49:44Z",
            })
        );
        let back: pb::WatchExecutionResponse = from_json(&json).unwrap();
        assert_eq!(back, event);
        // In the proto file's field order, as grpcurl prints it.
        let line = line(&event).unwrap();
        assert!(
            line.starts_with(r#"{"kind":"WATCH_EVENT_KIND_SNAPSHOT","revision":"7","execution":{"hashid":"v8brp""#),
            "{line}"
        );
    }

    /// Requests read with either spelling of a field; unknown fields are refused.
    #[test]
    fn requests_read_from_either_spelling() {
        let request: pb::ListExecutionsRequest = from_json(&serde_json::json!({
            "page_size": 10, "userKey": "acme", "statuses": ["EXECUTION_STATUS_RUNNING"],
            "executionData": {"region": "eu", "n": 3},
        }))
        .unwrap();
        assert_eq!(request.page_size, 10);
        assert_eq!(request.user_key, "acme");
        assert_eq!(request.statuses, [pb::ExecutionStatus::Running as i32]);
        assert_eq!(request.execution_data.unwrap().fields.len(), 2);
        assert!(
            from_json::<pb::ListExecutionsRequest>(&serde_json::json!({"pageSise": 1})).is_err()
        );
    }
}
