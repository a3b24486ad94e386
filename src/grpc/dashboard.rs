//! The dashboard: the browser page at `/` of the service's own port.
//!
//! The page is a static bundle built from `web/` (TypeScript, Vite) into `web/dist/`,
//! which the repository carries, and embedded here with `include_bytes!`: building the
//! binary needs no npm, and `cargo run` serves the page. The page calls the API itself
//! over gRPC-Web (see `web`), with the caller's token; the files hold no data and are
//! served to anyone.
//!
//! Every `GET` or `HEAD` request is answered here (gRPC and gRPC-Web calls are `POST`):
//! a file of the bundle, with its content type, a Content-Security-Policy that allows
//! scripts and styles from this origin only (no inline script anywhere), an `ETag` to
//! revalidate with, and the gzip form when the browser accepts it; any other path is 404.

use std::collections::HashMap;
use std::io::Write;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::{Either, Ready, ready};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use tonic::body::Body;
use tower::{Layer, Service};

/// The policy of every answer: this origin's scripts, styles and API only; no inline
/// script or style, no plugins, no framing, no forms.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The files of `web/dist/`, by their path under it, with their content types. A unit
/// test checks that this is every file there.
macro_rules! bundle {
    ($($path:literal => $type:literal),* $(,)?) => {
        &[$(($path, $type, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist/", $path)))),*]
    };
}
const FILES: &[(&str, &str, &[u8])] = bundle! {
    "index.html" => "text/html; charset=utf-8",
    "assets/dashboard.js" => "text/javascript; charset=utf-8",
    "assets/dashboard.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
};

/// One file as served: its bytes, their gzip form when that is smaller, and its tag.
struct Asset {
    content_type: &'static str,
    plain: Bytes,
    gzip: Option<Bytes>,
    etag: HeaderValue,
}

/// The bundle, by request path (`/` is `index.html`), compressed once on first use.
static ASSETS: LazyLock<HashMap<String, Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(path, content_type, bytes)| {
            let digest = Sha256::digest(bytes);
            let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
                .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
            let gzip = gzip(bytes).filter(|zipped| zipped.len() < bytes.len());
            let asset = Asset {
                content_type,
                plain: Bytes::from_static(bytes),
                gzip,
                etag,
            };
            (format!("/{path}"), asset)
        })
        .collect()
});

fn gzip(bytes: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// Whether `Accept-Encoding` lists gzip (and does not refuse it with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// The answer to a `GET` or `HEAD` of `path`.
fn answer(method: &Method, path: &str, headers: &HeaderMap) -> http::Response<Body> {
    let path = if path == "/" { "/index.html" } else { path };
    let builder = http::Response::builder()
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_FRAME_OPTIONS, "DENY");
    let Some(asset) = ASSETS.get(path) else {
        return respond(
            builder
                .status(StatusCode::NOT_FOUND)
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            method,
            Bytes::from_static(b"not found: the dashboard is at /\n"),
        );
    };
    // Names carry no content hash (the bundle must be reproducible byte for byte), so
    // browsers revalidate every time, and a matching tag answers 304 with no body.
    let builder = builder
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ETAG, asset.etag.clone())
        .header(header::VARY, "accept-encoding");
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag == asset.etag);
    if unchanged {
        return respond(
            builder.status(StatusCode::NOT_MODIFIED),
            &Method::HEAD,
            Bytes::new(),
        );
    }
    let builder = builder.header(header::CONTENT_TYPE, asset.content_type);
    match &asset.gzip {
        Some(zipped) if accepts_gzip(headers) => respond(
            builder.header(header::CONTENT_ENCODING, "gzip"),
            method,
            zipped.clone(),
        ),
        _ => respond(builder, method, asset.plain.clone()),
    }
}

/// The response `builder` makes with `bytes` as its body (none for `HEAD`, with the
/// length `GET` would send).
fn respond(
    builder: http::response::Builder,
    method: &Method,
    bytes: Bytes,
) -> http::Response<Body> {
    let builder = builder.header(header::CONTENT_LENGTH, bytes.len());
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::new(Full::new(bytes))
    };
    builder.body(body).unwrap_or_else(|_| {
        let mut failed = http::Response::new(Body::empty());
        *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        failed
    })
}

/// The tower layer that answers `GET` and `HEAD` with the dashboard and passes every
/// other request on.
#[derive(Clone, Copy, Debug, Default)]
pub struct DashboardLayer;

impl<S> Layer<S> for DashboardLayer {
    type Service = Dashboard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Dashboard { inner }
    }
}

/// The service of [`DashboardLayer`].
#[derive(Clone, Debug)]
pub struct Dashboard<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for Dashboard<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method();
        if method == Method::GET || method == Method::HEAD {
            let response = answer(method, request.uri().path(), request.headers());
            return Either::Right(ready(Ok(response)));
        }
        Either::Left(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the build wrote to `web/dist/` is served, and nothing else is listed.
    #[test]
    fn every_built_file_is_embedded() {
        let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/dist");
        let mut found = Vec::new();
        let mut dirs = vec![dist.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let relative = path.strip_prefix(&dist).unwrap();
                    found.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        found.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(p, _, _)| (*p).to_owned()).collect();
        listed.sort();
        assert_eq!(found, listed, "web/dist and the FILES table differ");
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        for (value, accepted) in [
            ("gzip, deflate, br", true),
            ("br;q=1.0, GZIP;q=0.5", true),
            ("gzip;q=0", false),
            ("identity", false),
        ] {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            assert_eq!(accepts_gzip(&headers), accepted, "{value}");
        }
    }

    #[test]
    fn the_page_has_its_policy_and_unknown_paths_are_404() {
        let page = answer(&Method::GET, "/", &HeaderMap::new());
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        let tag = page.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(
            answer(&Method::GET, "/", &again).status(),
            StatusCode::NOT_MODIFIED
        );
        let missing = answer(&Method::GET, "/../Cargo.toml", &HeaderMap::new());
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
