//! A real server on port 0 (or a given address) over a test database, and the one way to
//! start it: [`TestServer::builder`].

use std::net::SocketAddr;
use std::time::Duration;

use executions::changes::ChangeHub;
use executions::db::Database;
use executions::grpc::ServerConfig;
use executions::service::{Executions, WatchSettings};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

use super::database::{Backend, PostgresDatabase, TestDatabase, this_test};
use super::fixtures::Client;

/// The server settings of tests: quick health checks, a short grace period, everything
/// else as in production.
pub fn test_config() -> ServerConfig {
    ServerConfig {
        default_time_zone: chrono_tz::UTC,
        shutdown_grace: Duration::from_secs(5),
        health_check_interval: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

/// A running server, its client, and the database it owns (if it owns one).
pub struct TestServer {
    /// A client connected to the server.
    pub client: Client,
    /// Address the server listens on.
    pub addr: SocketAddr,
    /// The server's change hub (to count the database reads it makes for watchers).
    pub hub: ChangeHub,
    backend: Backend,
    url: String,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    // Last: dropped after the server is told to stop (see `TestDatabase`).
    database: Option<TestDatabase>,
}

/// Which database a [`Builder`] starts its server on.
enum Source {
    /// A fresh database of this kind, owned by the server.
    Fresh(Backend),
    /// This database, owned by the server (one a stopped server handed back).
    Owned(TestDatabase),
    /// Another server's database, owned by that server.
    Shared { backend: Backend, url: String },
}

/// Settings of a server to start; see [`TestServer::builder`].
#[must_use = "a builder starts nothing until `start`"]
pub struct Builder {
    source: Source,
    user: Option<String>,
    name: Option<String>,
    config: ServerConfig,
    watch: WatchSettings,
    retention: Option<Duration>,
    addr: SocketAddr,
}

impl Builder {
    /// On a fresh database of this kind (default: SQLite). Check
    /// [`Backend::available`] first: starting on an unavailable backend panics.
    pub fn on(mut self, backend: Backend) -> Self {
        self.source = Source::Fresh(backend);
        self
    }

    /// On the database of `other` (a second replica); `other` keeps owning it.
    pub fn same_database_as(mut self, other: &TestServer) -> Self {
        self.source = Source::Shared {
            backend: other.backend,
            url: other.url.clone(),
        };
        self
    }

    /// On the database at `url` that someone else owns (a PostgreSQL cluster a fault
    /// test started itself).
    #[allow(dead_code, reason = "used by the fault suite (tests/faults), not here")]
    pub fn database_url(mut self, backend: Backend, url: &str) -> Self {
        self.source = Source::Shared {
            backend,
            url: url.to_owned(),
        };
        self
    }

    /// On `database`, which the server then owns (e.g. from
    /// [`TestServer::stop_keeping_database`]).
    pub fn database(mut self, database: TestDatabase) -> Self {
        self.source = Source::Owned(database);
        self
    }

    /// Connecting to PostgreSQL as this user instead of the one in `TEST_DATABASE_URL`.
    pub fn connect_as(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    /// Naming a fresh database after this test (`it_<test>_<random>` on PostgreSQL, a
    /// temporary folder `it_<test>_...` for SQLite); default: the running test, from its
    /// thread's name.
    pub fn named(mut self, test: &str) -> Self {
        self.name = Some(test.to_owned());
        self
    }

    /// With these server settings (default: [`test_config`]).
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Deleting executions finished longer ago than `retention`, as `--retention` does.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// With these watch settings (default: [`WatchSettings::default`]).
    pub fn watch(mut self, settings: WatchSettings) -> Self {
        self.watch = settings;
        self
    }

    /// Listening on `addr` (default: `127.0.0.1:0`).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Creates the database if it is a fresh one, migrates it, binds the address and
    /// serves; the returned server's client connects on first use.
    pub async fn start(self) -> TestServer {
        let (backend, url, database) = match self.source {
            Source::Fresh(backend) => {
                let name = self.name.unwrap_or_else(this_test);
                let database = TestDatabase::create(backend, &name).await;
                (backend, database.url().to_owned(), Some(database))
            }
            Source::Owned(database) => (
                database.backend(),
                database.url().to_owned(),
                Some(database),
            ),
            Source::Shared { backend, url } => (backend, url, None),
        };
        let url = match &self.user {
            Some(user) => super::database::with_user(&url, user),
            None => url,
        };
        let db = Database::connect(&url, 8)
            .await
            .expect("connect and migrate");
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind the test server's port");
        let addr = listener.local_addr().unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let hub = ChangeHub::default();
        let executions = Executions::new(db, hub.clone(), self.watch);
        let (config, retention) = (self.config, self.retention);
        let task = tokio::spawn(async move {
            // Retention stops with the server, so the database can be dropped after it.
            let stop_retention = tokio_util::sync::CancellationToken::new();
            let retention =
                retention.map(|r| executions.start_retention(r, stop_retention.clone()));
            let served = executions::grpc::run(config, executions, listener, async {
                // A dropped sender (a test that panicked) stops the server as well.
                let _ = stopped.await;
            })
            .await;
            stop_retention.cancel();
            if let Some(retention) = retention {
                let _ = retention.await;
            }
            served
        });
        // Lazy: a TLS server's tests make their own clients; this one connects on first use.
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        TestServer {
            client: Client::new(channel),
            addr,
            hub,
            backend,
            url,
            shutdown,
            task,
            database,
        }
    }
}

impl TestServer {
    /// The one way to start a test server: by default over a fresh SQLite file, with
    /// [`test_config`], default watch settings, on `127.0.0.1:0`.
    ///
    /// ```ignore
    /// let server = TestServer::builder().on(Backend::Postgres).config(config).start().await;
    /// let replica = TestServer::builder().same_database_as(&server).connect_as("b").start().await;
    /// ```
    pub fn builder() -> Builder {
        Builder {
            source: Source::Fresh(Backend::Sqlite),
            user: None,
            name: None,
            config: test_config(),
            watch: WatchSettings::default(),
            retention: None,
            addr: "127.0.0.1:0".parse().unwrap(),
        }
    }

    /// A fresh client (its own HTTP/2 connection).
    pub async fn new_client(&self) -> Client {
        Client::new(self.channel().await)
    }

    /// A fresh plaintext connection to the server.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the test server")
    }

    /// The kind of database the server runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL the server connects to its database with.
    #[allow(dead_code, reason = "used by the fault suite (tests/faults), not here")]
    pub fn database_url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL database the server owns, if it owns one.
    pub fn postgres(&self) -> Option<&PostgresDatabase> {
        match &self.database {
            Some(TestDatabase::Postgres(database)) => Some(database),
            Some(TestDatabase::Sqlite(_)) | None => None,
        }
    }

    /// Shuts the server down (within 10 s) and removes the database it owns.
    pub async fn stop(self) {
        drop(self.halt().await);
    }

    /// Shuts the server down (within 10 s) and hands back its database, to start another
    /// server on (a restart, as a client sees it, when started on the same address).
    pub async fn stop_keeping_database(self) -> TestDatabase {
        self.halt()
            .await
            .expect("a server started on another's database owns none")
    }

    async fn halt(self) -> Option<TestDatabase> {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .expect("server task")
            .expect("server ran cleanly");
        self.database
    }
}
