//! The [`Caller`] of a request, read from what the transport knows about it: the
//! [`Principal`] that [`super::auth`] put in its extensions, and the deadline its client
//! sent in the `grpc-timeout` header.

use std::time::{Duration, Instant};

use tonic::Request;

use super::auth::Principal;
use crate::service::Caller;

/// The scope a request runs in.
pub fn of<T>(request: &Request<T>) -> Caller {
    let received = Instant::now();
    let principal = request.extensions().get::<Principal>();
    Caller {
        tenant: principal.and_then(|principal| principal.tenant.clone()),
        actor: principal
            .map(|principal| principal.name.clone())
            .unwrap_or_default(),
        deadline: request
            .metadata()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|timeout| received + timeout),
    }
}

/// A `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub(super) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        for bad in ["", "S", "12", "123456789S", "1x", "-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}
