//! Bearer tokens: the tokens file of the auth tests, and requests that carry a token.

use executions::grpc::{ServerConfig, Tokens};
use executions::proto::v1 as pb;
use sha2::{Digest, Sha256};

use super::fixtures::{Client, start_request_for};
use super::server::test_config;

/// The token of the unconfined writer in [`test_tokens`].
pub const WRITER_TOKEN: &str = "writer-token-0f3a";
/// The token of the unconfined reader in [`test_tokens`].
pub const READER_TOKEN: &str = "reader-token-77c1";
/// The token of the writer confined to tenant `acme` in [`test_tokens`].
pub const ACME_WRITER_TOKEN: &str = "acme-writer-token-5d2e";
/// The token of the reader confined to tenant `acme` in [`test_tokens`].
pub const ACME_READER_TOKEN: &str = "acme-reader-token-9b40";

/// One `[[tokens]]` entry of a tokens file: `token` (stored as its SHA-256) named `name`
/// with `role`, confined to tenant `user_key` when given.
pub fn token_entry(name: &str, token: &str, role: &str, user_key: Option<&str>) -> String {
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let tenant = user_key.map_or(String::new(), |k| format!("user_key = \"{k}\"\n"));
    format!("[[tokens]]\nname = \"{name}\"\nsha256 = \"{digest}\"\nrole = \"{role}\"\n{tenant}\n")
}

/// A tokens file with a writer and a reader for every tenant, and a writer and a reader
/// confined to tenant `acme`.
pub fn test_tokens() -> Tokens {
    let file = [
        token_entry("ops", WRITER_TOKEN, "writer", None),
        token_entry("dashboards", READER_TOKEN, "reader", None),
        token_entry("acme-engine", ACME_WRITER_TOKEN, "writer", Some("acme")),
        token_entry("acme-dashboard", ACME_READER_TOKEN, "reader", Some("acme")),
    ]
    .concat();
    Tokens::parse(&file).expect("tokens file")
}

/// [`test_config`] with [`test_tokens`]: every API call needs one of its tokens.
pub fn tokens_config() -> ServerConfig {
    ServerConfig {
        tokens: Some(test_tokens()),
        ..test_config()
    }
}

/// `message` with `authorization: Bearer token`.
pub fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

/// `message` with `authorization: Bearer token` when there is a token, else as it is.
pub fn maybe_bearer<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    match token {
        Some(token) => bearer(token, message),
        None => tonic::Request::new(message),
    }
}

/// Starts an execution (see [`start_request_for`]) with `token`.
pub async fn start_as(
    client: &mut Client,
    token: &str,
    key: &str,
    user_key: &str,
) -> Result<pb::Execution, tonic::Status> {
    client
        .start_execution(bearer(token, start_request_for(key, user_key)))
        .await
        .map(tonic::Response::into_inner)
}
