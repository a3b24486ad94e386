//! How the client commands reach a server: its address (with or without a scheme), and,
//! for a secured server, a bearer token and the CA that signed its certificate.

use clap::Args;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::proto::v1::execution_service_client::ExecutionServiceClient;
use crate::startup::causes;

/// The address the client commands use when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";

/// Where the server is and how to authenticate to it.
#[derive(Clone, Debug, Args)]
pub struct ConnectArgs {
    /// Address of the server: `HOST:PORT`, or a URL (`http://HOST:PORT`, or `https://` for
    /// TLS; a bare `HOST:PORT` is `https://` when --ca-cert is given).
    #[arg(long, env = "EXECUTIONS_ADDR", default_value = DEFAULT_ADDR, value_parser = parse_addr)]
    pub addr: String,
    /// Bearer token, for a server with a tokens file.
    #[arg(long, env = "EXECUTIONS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the server's certificate (TLS).
    #[arg(long, env = "EXECUTIONS_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Checks an address: a URL with scheme `http` or `https`, or `HOST:PORT`.
fn parse_addr(addr: &str) -> Result<String, String> {
    let addr = addr.trim();
    match addr.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(scheme, "http" | "https") {
                return Err(format!(
                    "scheme `{scheme}` is not supported: use HOST:PORT, http://HOST:PORT or https://HOST:PORT"
                ));
            }
            if rest.is_empty() {
                return Err("no host after the scheme".to_owned());
            }
        }
        None => {
            let port = addr.rsplit_once(':').map(|(_, port)| port);
            if port.is_none_or(|p| p.parse::<u16>().is_err()) {
                return Err(format!(
                    "`{addr}` is not HOST:PORT (e.g. 127.0.0.1:50051) nor an http:// or https:// URL"
                ));
            }
        }
    }
    Ok(addr.to_owned())
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug)]
pub struct BearerToken(Option<AsciiMetadataValue>);

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A client of the API, with the token (if any) on every call.
pub type Client = ExecutionServiceClient<InterceptedService<Channel, BearerToken>>;

impl ConnectArgs {
    /// The address as a URL: `HOST:PORT` gets `http://`, or `https://` with a CA.
    pub fn url(&self) -> String {
        if self.addr.contains("://") {
            self.addr.clone()
        } else if self.ca_cert.is_some() {
            format!("https://{}", self.addr)
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Connects to the server; the error says what went wrong, for people.
    pub async fn connect(&self) -> Result<Client, String> {
        let token = match &self.token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| "the token has characters a header cannot carry".to_owned())?,
            ),
            None => None,
        };
        let url = self.url();
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| format!("bad address {url}: {}", causes(&e)))?
            .connect_timeout(std::time::Duration::from_secs(5));
        if let Some(path) = &self.ca_cert {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(|e| format!("TLS settings: {}", causes(&e)))?;
        } else if url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_enabled_roots())
                .map_err(|e| format!("TLS settings: {}", causes(&e)))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {}", causes(&e)))?;
        Ok(ExecutionServiceClient::with_interceptor(
            channel,
            BearerToken(token),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_or_without_a_scheme() {
        assert_eq!(parse_addr("127.0.0.1:50051").unwrap(), "127.0.0.1:50051");
        assert_eq!(parse_addr("http://h:1").unwrap(), "http://h:1");
        assert_eq!(parse_addr("https://h:1").unwrap(), "https://h:1");
        assert!(parse_addr("grpc://h:1").unwrap_err().contains("HOST:PORT"));
        assert!(parse_addr("localhost").is_err());
        let args = |addr: &str, ca: bool| ConnectArgs {
            addr: addr.into(),
            token: None,
            ca_cert: ca.then(|| "ca.pem".into()),
        };
        assert_eq!(args("h:1", false).url(), "http://h:1");
        assert_eq!(args("h:1", true).url(), "https://h:1");
        assert_eq!(args("http://h:1", true).url(), "http://h:1");
    }
}
