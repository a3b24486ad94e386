//! `google.protobuf.Struct` <-> JSON, in both directions.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Number};

/// What a Struct may hold but the databases cannot store.
#[derive(Debug)]
pub enum UnstorableJson {
    /// NaN or an infinity: JSON has no such numbers.
    NonFiniteNumber,
    /// A NUL character in a key or a string: PostgreSQL's jsonb refuses it.
    NulCharacter,
    /// Objects and lists nested deeper than allowed.
    TooDeep,
}

/// The JSON object a Struct holds, with objects and lists nested at most `max_depth`
/// levels (the Struct itself is level 1). Numbers keep their value: `-0` becomes `0`,
/// which JSON and both databases take as the same number, so that equal values are
/// stored (and compared) the same way.
pub fn struct_to_json(
    s: Struct,
    max_depth: usize,
) -> Result<Map<String, serde_json::Value>, UnstorableJson> {
    let Some(below) = max_depth.checked_sub(1) else {
        return Err(UnstorableJson::TooDeep);
    };
    s.fields
        .into_iter()
        .map(|(k, v)| {
            if k.contains('\0') {
                return Err(UnstorableJson::NulCharacter);
            }
            Ok((k, value_to_json(v, below)?))
        })
        .collect()
}

fn value_to_json(v: Value, depth_left: usize) -> Result<serde_json::Value, UnstorableJson> {
    Ok(match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::NumberValue(n)) => {
            // `n + 0.0` is `n` for every number but -0, which becomes 0.
            let n = n + 0.0;
            serde_json::Value::Number(Number::from_f64(n).ok_or(UnstorableJson::NonFiniteNumber)?)
        }
        Some(Kind::StringValue(s)) if s.contains('\0') => return Err(UnstorableJson::NulCharacter),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::ListValue(list)) => {
            let below = depth_left.checked_sub(1).ok_or(UnstorableJson::TooDeep)?;
            serde_json::Value::Array(
                list.values
                    .into_iter()
                    .map(|v| value_to_json(v, below))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s, depth_left)?),
    })
}

/// The Struct that holds a JSON object.
pub fn json_to_struct(map: &Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// Bytes [`json_to_struct`]`(map)` takes encoded, counted without building it (each
/// field's size as prost writes it: a map entry per key, a Value's one `kind` always).
pub fn struct_encoded_len(map: &Map<String, serde_json::Value>) -> usize {
    use super::size::map_entry_len;
    map.iter()
        .map(|(k, v)| map_entry_len(1, k, Some(value_encoded_len(v))))
        .sum()
}

/// Bytes [`json_to_value`]`(v)` takes encoded (without its own tag and length).
fn value_encoded_len(v: &serde_json::Value) -> usize {
    use super::size::delimited_len;
    use prost::encoding::key_len;
    match v {
        // The enum's 0 and a bool: a tag and one byte.
        serde_json::Value::Null => key_len(1) + 1,
        serde_json::Value::Bool(_) => key_len(4) + 1,
        serde_json::Value::Number(_) => key_len(2) + 8,
        serde_json::Value::String(s) => delimited_len(3, s.len()),
        serde_json::Value::Array(items) => delimited_len(
            6,
            items
                .iter()
                .map(|item| delimited_len(1, value_encoded_len(item)))
                .sum(),
        ),
        serde_json::Value::Object(map) => delimited_len(5, struct_encoded_len(map)),
    }
}

/// The protobuf Value of a JSON value.
pub fn json_to_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_lists(depth: usize) -> serde_json::Value {
        (1..depth).fold(serde_json::json!([1]), |inner, _| {
            serde_json::json!([inner])
        })
    }

    /// The counted size of every kind of value, nested, empty keys and strings
    /// included, is the size of the Struct built and encoded.
    #[test]
    fn a_structs_size_is_counted_as_prost_encodes_it() {
        use prost::Message;
        let long = "é".repeat(100);
        let cases = [
            serde_json::json!({}),
            serde_json::json!({"": "", "n": null, "t": true, "f": false, "z": 0, "x": -1.5}),
            serde_json::json!({"list": [], "nested": {"": {}, "l": [[], [null, 1, "s", {"k": [true]}]]}}),
            serde_json::json!({"long": long, "many": (0..200).collect::<Vec<_>>()}),
            serde_json::json!({ long.clone(): { long.clone(): [long.clone(), {"a": long}] } }),
        ];
        for case in cases {
            let map = case.as_object().unwrap();
            assert_eq!(
                struct_encoded_len(map),
                json_to_struct(map).encoded_len(),
                "{case}"
            );
        }
    }

    /// A Struct holding lists nested to the limit converts; one level more does not.
    #[test]
    fn depth_is_bounded_and_minus_zero_is_zero() {
        let at = |lists: usize| {
            let mut map = Map::new();
            map.insert("k".to_owned(), nested_lists(lists));
            struct_to_json(json_to_struct(&map), 32)
        };
        assert!(at(31).is_ok(), "the object and 31 lists: 32 levels");
        assert!(matches!(at(32), Err(UnstorableJson::TooDeep)));
        let mut map = Map::new();
        map.insert("z".to_owned(), serde_json::json!(-0.0));
        let stored = struct_to_json(json_to_struct(&map), 32).unwrap();
        assert_eq!(serde_json::to_string(&stored).unwrap(), r#"{"z":0.0}"#);
    }
}
