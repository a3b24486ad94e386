//! How the client commands reach a server: its address, and, for a secured server, a
//! bearer token and the CA that signed its certificate.

use clap::Args;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::proto::v1::execution_service_client::ExecutionServiceClient;

/// Where the server is and how to authenticate to it.
#[derive(Clone, Debug, Args)]
pub struct ConnectArgs {
    /// Address of the server (`https://` for TLS).
    #[arg(
        long,
        env = "EXECUTIONS_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// Bearer token, for a server with a tokens file.
    #[arg(long, env = "EXECUTIONS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the server's certificate (for `https://`).
    #[arg(long, env = "EXECUTIONS_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
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
        let mut endpoint = Endpoint::from_shared(self.addr.clone())
            .map_err(|e| format!("bad address {}: {e}", self.addr))?;
        if let Some(path) = &self.ca_cert {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(|e| format!("TLS settings: {e}"))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
        Ok(ExecutionServiceClient::with_interceptor(
            channel,
            BearerToken(token),
        ))
    }
}
