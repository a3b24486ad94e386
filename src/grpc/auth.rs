//! Bearer-token authentication and roles, as a tower layer in front of every service.
//!
//! Tokens come from a TOML file that holds each token's SHA-256, never the token itself:
//!
//! ```toml
//! [[tokens]]
//! name = "dashboard"        # for logs and metrics; never the token
//! sha256 = "…64 hex digits…"
//! role = "reader"           # reader: Get, List, Watch; writer: everything
//! user_key = "acme"         # optional: confines the token to one tenant
//! ```
//!
//! A call's `authorization: Bearer <token>` is hashed and compared with every entry in
//! constant time, so neither the timing nor the logs reveal a token. Health stays open
//! for probes; reflection and every other path need a known token; the API's writes need
//! a writer. The caller's [`Principal`] rides in the request's extensions to the handlers,
//! which confine it to its tenant (see [`crate::service::Caller`]).

use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use futures::future::{Either, Ready, ready};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::error::Error;

/// What a token may do.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GetExecution, ListExecutions, WatchExecution (and reflection).
    Reader,
    /// Everything.
    Writer,
}

/// The authenticated caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's name from the tokens file.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The tenant it is confined to, if any.
    pub tenant: Option<String>,
}

/// The tokens file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    role: Role,
    user_key: Option<String>,
}

/// The known tokens: each one's SHA-256 and who presents it.
#[derive(Clone, Debug)]
pub struct Tokens {
    known: Arc<Vec<([u8; 32], Principal)>>,
}

impl Tokens {
    /// Reads a tokens file, refusing one that is malformed or names no token.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the tokens file {}", path.display()))
    }

    /// Parses the TOML text of a tokens file.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: TokensFile = toml::from_str(text)?;
        anyhow::ensure!(!file.tokens.is_empty(), "no [[tokens]] entry");
        let mut known = Vec::with_capacity(file.tokens.len());
        for entry in file.tokens {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(entry.sha256.trim(), &mut digest).with_context(|| {
                format!(
                    "token {:?}: sha256 must be 64 hexadecimal digits (the SHA-256 of the token, e.g. `printf %s TOKEN | sha256sum`)",
                    entry.name
                )
            })?;
            anyhow::ensure!(
                !known
                    .iter()
                    .any(|(_, p): &([u8; 32], Principal)| p.name == entry.name),
                "token name {:?} appears twice",
                entry.name
            );
            if let Some(user_key) = &entry.user_key {
                anyhow::ensure!(
                    !user_key.is_empty(),
                    "token {:?}: user_key is empty",
                    entry.name
                );
            }
            known.push((
                digest,
                Principal {
                    name: entry.name,
                    role: entry.role,
                    tenant: entry.user_key,
                },
            ));
        }
        Ok(Self {
            known: Arc::new(known),
        })
    }

    /// Who presents `token`, if anyone. Every entry is compared, in constant time.
    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (known, principal) in self.known.iter() {
            if bool::from(known.ct_eq(&digest)) {
                found = Some(principal);
            }
        }
        found
    }
}

/// The role a path needs; `None` for paths open to anyone (health, for probes).
fn required_role(path: &str) -> Option<Role> {
    const API: &str = "/workflow.executions.v1.ExecutionService/";
    if path.starts_with("/grpc.health.v1.Health/") {
        return None;
    }
    match path.strip_prefix(API) {
        Some("StartExecution" | "UpdateAction" | "StopExecution" | "StopExecutions") => {
            Some(Role::Writer)
        }
        // Reads, reflection, and any unknown path (which then answers UNIMPLEMENTED only
        // to a known caller).
        _ => Some(Role::Reader),
    }
}

/// The tower layer that authenticates every call (or, without tokens, lets every call
/// through unauthenticated).
#[derive(Clone, Debug)]
pub struct AuthLayer {
    tokens: Option<Tokens>,
}

impl AuthLayer {
    /// Checks calls against `tokens`; `None` serves without authentication.
    pub fn new(tokens: Option<Tokens>) -> Self {
        Self { tokens }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the server's routes.
#[derive(Clone, Debug)]
pub struct Authenticate<S> {
    inner: S,
    tokens: Option<Tokens>,
}

impl<S> Authenticate<S> {
    /// The principal of a request, or the error that refuses it.
    fn check(&self, request: &http::Request<Body>) -> Result<Option<Principal>, Error> {
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let Some(needed) = required_role(request.uri().path()) else {
            return Ok(None);
        };
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                // The scheme is case-insensitive (RFC 7235).
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .ok_or(Error::Unauthenticated)?;
        let principal = tokens
            .authenticate(token.trim())
            .ok_or(Error::Unauthenticated)?;
        if needed == Role::Writer && principal.role != Role::Writer {
            return Err(Error::PermissionDenied {
                reason: "READ_ONLY_TOKEN",
                message: format!(
                    "token {:?} is a reader: it may get, list and watch executions, not change them",
                    principal.name
                ),
            });
        }
        Ok(Some(principal.clone()))
    }
}

impl<S> Service<http::Request<Body>> for Authenticate<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.check(&request) {
            Ok(principal) => {
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                Either::Left(self.inner.call(request))
            }
            Err(refused) => {
                tracing::info!(path = request.uri().path(), error = %refused, "call refused");
                Either::Right(ready(Ok(Status::from(refused).into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    #[test]
    fn tokens_are_known_by_their_hash() {
        let file = format!(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"{}\"\nrole = \"writer\"\n\n[[tokens]]\nname = \"acme-dash\"\nsha256 = \"{}\"\nrole = \"reader\"\nuser_key = \"acme\"\n",
            sha256_hex("s3cret-writer"),
            sha256_hex("s3cret-reader"),
        );
        let tokens = Tokens::parse(&file).unwrap();
        let writer = tokens.authenticate("s3cret-writer").unwrap();
        assert_eq!((writer.name.as_str(), writer.role), ("ci", Role::Writer));
        assert_eq!(writer.tenant, None);
        let reader = tokens.authenticate("s3cret-reader").unwrap();
        assert_eq!(reader.tenant.as_deref(), Some("acme"));
        assert!(tokens.authenticate("guess").is_none());
        assert!(tokens.authenticate(&sha256_hex("s3cret-writer")).is_none());
    }

    #[test]
    fn malformed_token_files_are_refused() {
        for bad in [
            "",
            "[[tokens]]\nname = \"a\"\nsha256 = \"xyz\"\nrole = \"writer\"\n",
            "[[tokens]]\nname = \"a\"\nsha256 = \"00\"\nrole = \"admin\"\n",
            "[[tokens]]\nname = \"a\"\ntoken = \"plain\"\nrole = \"writer\"\n",
        ] {
            assert!(Tokens::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn health_is_open_and_writes_need_a_writer() {
        assert_eq!(required_role("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            required_role("/workflow.executions.v1.ExecutionService/GetExecution"),
            Some(Role::Reader)
        );
        assert_eq!(
            required_role("/workflow.executions.v1.ExecutionService/StopExecution"),
            Some(Role::Writer)
        );
        assert_eq!(
            required_role("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Some(Role::Reader)
        );
    }
}
