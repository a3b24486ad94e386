//! Browsers on the service's own port: gRPC-Web (tonic-web) and CORS.
//!
//! A browser cannot speak gRPC (it has no access to HTTP/2 trailers), and over plain HTTP
//! it speaks HTTP/1.1 only. So the server also accepts HTTP/1.1 on its port, and
//! [`tonic_web::GrpcWebLayer`] translates each gRPC-Web call (`application/grpc-web`,
//! binary or base64 text) into a gRPC call before the layers that keep the server's
//! promises (telemetry, the edge, tokens, load shedding), and their answer back: the
//! deadline, the ErrorInfo on every error, the unsent-bytes budget and the connection
//! limits apply to gRPC-Web calls exactly as to gRPC ones. Calls over HTTP/2 that are not
//! gRPC-Web pass through untouched.
//!
//! Cross-origin calls are refused unless their origin is listed (`--cors-origin`): by
//! default only the dashboard served from the same origin may call. A listed origin gets
//! the CORS headers gRPC-Web needs (preflight answered here, before authentication, and
//! the `grpc-*` headers exposed so the browser can read an error's status and details).

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a gRPC-Web client sends (and a cross-origin one must be allowed to).
const ALLOWED_HEADERS: [&str; 7] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "grpc-accept-encoding",
    "grpc-encoding",
    "authorization",
];

/// Response headers a cross-origin gRPC-Web client must be able to read: the status of a
/// call that failed at once travels in them.
const EXPOSED_HEADERS: [&str; 5] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The origin `text` names, as browsers send it in `Origin`: `scheme://host[:port]`, with
/// no path, query or trailing slash; `None` when it is not one.
pub fn parse_origin(text: &str) -> Option<HeaderValue> {
    let url = url::Url::parse(text).ok()?;
    let serialized = url.origin().ascii_serialization();
    // `null` for schemes without an origin; a path, query or fragment is not an origin.
    (serialized != "null" && serialized == text.trim_end_matches('/') && !text.ends_with('/'))
        .then(|| HeaderValue::from_str(&serialized).ok())
        .flatten()
}

/// The CORS layer of the server: answers preflights and adds the CORS headers for the
/// `origins` listed, and for no other (same-origin calls need none).
pub fn cors_layer(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::POST])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in [
            "http://127.0.0.1:5173",
            "https://ops.example.com",
            "http://localhost:8080",
        ] {
            assert_eq!(parse_origin(good).unwrap(), good, "{good}");
        }
        for bad in [
            "ops.example.com",
            "https://ops.example.com/",
            "https://ops.example.com/dash",
            "https://ops.example.com?x=1",
            "file:///tmp/x",
            "*",
            "",
        ] {
            assert!(parse_origin(bad).is_none(), "{bad}");
        }
        // The default port is not part of a serialized origin.
        assert!(parse_origin("https://ops.example.com:443").is_none());
    }
}
