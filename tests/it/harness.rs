//! Starts a real server on a real database and hands tests a connected client; plus the
//! fixtures and assertions the tests share.

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use executions::changes::ChangeHub;
use executions::db::Database;
use executions::grpc::{ERROR_DOMAIN, ServerConfig};
use executions::proto::v1 as pb;
use executions::proto::v1::execution_service_client::ExecutionServiceClient;
use executions::service::{Executions, WatchSettings};
use sea_orm::ConnectionTrait;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub use executions::proto::v1::{ActionStatus, ExecutionStatus, ExecutionView};
pub use tonic_health::pb::health_check_response::ServingStatus;

/// Runs each named `async fn name(server: &TestServer)` once per database.
#[macro_export]
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let server = $crate::harness::TestServer::sqlite().await;
                super::$name(&server).await;
                server.stop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(server) = $crate::harness::TestServer::postgres().await {
                    super::$name(&server).await;
                    server.stop().await;
                }
            }
        }
    )*};
}

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

/// A running server, its client, and what to clean up.
pub struct TestServer {
    /// A client connected to the server.
    pub client: ExecutionServiceClient<Channel>,
    /// Address the server listens on.
    pub addr: std::net::SocketAddr,
    /// The server's change hub (to count the database reads it makes for watchers).
    pub hub: ChangeHub,
    url: String,
    config: ServerConfig,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, database: String },
    None,
}

impl TestServer {
    /// A server over a fresh SQLite file.
    pub async fn sqlite() -> Self {
        Self::sqlite_with(WatchSettings::default()).await
    }

    /// A server over a fresh SQLite file, with these watch settings.
    pub async fn sqlite_with(settings: WatchSettings) -> Self {
        Self::sqlite_configured(test_config(), settings).await
    }

    /// A server over a fresh SQLite file, with these server and watch settings.
    pub async fn sqlite_configured(config: ServerConfig, settings: WatchSettings) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Self::start_on(
            &url,
            Cleanup::Sqlite(dir),
            config,
            settings,
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
    }

    /// A server over a fresh PostgreSQL database with these server settings (see
    /// [`TestServer::postgres`]).
    pub async fn postgres_configured(config: ServerConfig) -> Option<Self> {
        let fresh = FreshPostgres::create().await?;
        let url = fresh.url.clone();
        let cleanup = Cleanup::Postgres {
            admin_url: fresh.admin_url,
            database: fresh.database,
        };
        let addr = "127.0.0.1:0".parse().unwrap();
        Some(Self::start_on(&url, cleanup, config, WatchSettings::default(), addr).await)
    }

    /// The same kind of server over a fresh database of the same kind as `self`.
    pub async fn like(&self, config: ServerConfig) -> Self {
        if self.postgres_database().is_some() {
            Self::postgres_configured(config)
                .await
                .expect("PostgreSQL is configured")
        } else {
            Self::sqlite_configured(config, WatchSettings::default()).await
        }
    }

    /// A server over a fresh PostgreSQL database, or `None` (with a note) when
    /// `TEST_DATABASE_URL` is not set outside CI.
    pub async fn postgres() -> Option<Self> {
        Self::postgres_with(WatchSettings::default()).await
    }

    /// A replica over the same database, connecting as another PostgreSQL user.
    pub async fn replica_as(&self, user: &str) -> Self {
        let rest = self
            .url
            .split_once('@')
            .map_or(self.url.as_str(), |(_, rest)| rest);
        let url = format!("postgres://{user}@{rest}");
        Self::start(&url, Cleanup::None, WatchSettings::default()).await
    }

    /// A PostgreSQL server with these watch settings (see [`TestServer::postgres`]).
    pub async fn postgres_with(settings: WatchSettings) -> Option<Self> {
        let fresh = FreshPostgres::create().await?;
        let url = fresh.url.clone();
        Some(
            Self::start(
                &url,
                Cleanup::Postgres {
                    admin_url: fresh.admin_url,
                    database: fresh.database,
                },
                settings,
            )
            .await,
        )
    }

    async fn start(url: &str, cleanup: Cleanup, settings: WatchSettings) -> Self {
        let addr = "127.0.0.1:0".parse().unwrap();
        Self::start_on(url, cleanup, test_config(), settings, addr).await
    }

    /// Stops the server and starts a new one on the same address and database (a server
    /// restart, as a client sees it).
    pub async fn restart(self) -> Self {
        let (url, addr, config) = (self.url.clone(), self.addr, self.config.clone());
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .expect("server task")
            .expect("server ran cleanly");
        Self::start_on(&url, self.cleanup, config, WatchSettings::default(), addr).await
    }

    async fn start_on(
        url: &str,
        cleanup: Cleanup,
        config: ServerConfig,
        settings: WatchSettings,
        addr: std::net::SocketAddr,
    ) -> Self {
        let db = Database::connect(url, 8)
            .await
            .expect("connect and migrate");
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the test server's port");
        let addr = listener.local_addr().unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let hub = ChangeHub::default();
        let executions = Executions::new(db, hub.clone(), settings);
        let task = tokio::spawn(executions::grpc::run(
            config.clone(),
            executions,
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        // Lazy: a TLS server's tests make their own clients; this one connects on first use.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        Self {
            client: ExecutionServiceClient::new(channel),
            addr,
            hub,
            url: url.to_owned(),
            config,
            shutdown,
            task,
            cleanup,
        }
    }

    /// A fresh client (its own HTTP/2 connection).
    pub async fn new_client(&self) -> ExecutionServiceClient<Channel> {
        ExecutionServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect to the test server")
    }

    /// The URL of the server's database.
    pub fn database_url(&self) -> &str {
        &self.url
    }

    /// A second server over the same database, with other settings.
    pub async fn another(&self, config: ServerConfig) -> Self {
        let addr = "127.0.0.1:0".parse().unwrap();
        Self::start_on(
            &self.url,
            Cleanup::None,
            config,
            WatchSettings::default(),
            addr,
        )
        .await
    }

    /// The admin URL and database name of a PostgreSQL test server.
    pub fn postgres_database(&self) -> Option<(&str, &str)> {
        match &self.cleanup {
            Cleanup::Postgres {
                admin_url,
                database,
            } => Some((admin_url, database)),
            Cleanup::Sqlite(_) | Cleanup::None => None,
        }
    }

    /// Shuts the server down (within 10 s) and removes its database.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .expect("server task")
            .expect("server ran cleanly");
        if let Cleanup::Postgres {
            admin_url,
            database,
        } = self.cleanup
            && let Ok(admin) = sea_orm::Database::connect(&admin_url).await
        {
            let _ = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                ))
                .await;
            admin.close().await.ok();
        }
    }
}

/// A new, empty PostgreSQL database (not migrated); the caller drops it.
pub struct FreshPostgres {
    /// `TEST_DATABASE_URL`.
    pub admin_url: String,
    /// Name of the new database.
    pub database: String,
    /// URL of the new database.
    pub url: String,
}

impl FreshPostgres {
    /// Creates one, or `None` (with a note) when `TEST_DATABASE_URL` is not set outside CI.
    pub async fn create() -> Option<Self> {
        let admin_url = postgres_url()?;
        let database = format!("it_{}", uuid::Uuid::now_v7().simple());
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{database}\""))
            .await
            .expect("create a test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &database);
        Some(Self {
            admin_url,
            database,
            url,
        })
    }

    /// Drops it.
    pub async fn drop_database(self) {
        if let Ok(admin) = sea_orm::Database::connect(&self.admin_url).await {
            let _ = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.database
                ))
                .await;
            admin.close().await.ok();
        }
    }
}

/// `TEST_DATABASE_URL`, or `None` after saying once that PostgreSQL is skipped. Under
/// `CI=true` a missing URL is a failure.
fn postgres_url() -> Option<String> {
    static NOTE: Once = Once::new();
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but TEST_DATABASE_URL is not set: the PostgreSQL half of the suite must run in CI"
            );
            NOTE.call_once(|| {
                use std::io::Write;
                // Straight to the process's stderr, past the test harness's capture, so
                // the skip is visible in every `cargo test` run.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nNOTE: PostgreSQL tests SKIPPED (TEST_DATABASE_URL is not set); only SQLite ran.\n      Set TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run them.\n"
                );
            });
            None
        }
    }
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{database}{query}", &base[..host_end])
}

/// Path of a file under `examples/`.
pub fn example_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The StartExecution request of an example file (`linear.json`, `fork_join.json`).
pub fn example(name: &str) -> pb::StartExecutionRequest {
    let text = std::fs::read_to_string(example_path(name)).expect("example file");
    let json: serde_json::Value = serde_json::from_str(&text).expect("example JSON");
    start_request(&json)
}

pub use executions::cli::examples::{start_request, to_struct};

/// A linear template of `n` actions: start -> a1 -> a2 -> ... -> an.
pub fn chain(n: usize) -> pb::Template {
    let mut nodes = vec![node("start_of_workflow", "Start")];
    let mut edges = Vec::new();
    let mut previous = "start_of_workflow".to_owned();
    for i in 1..=n {
        let id = format!("a{i}");
        nodes.push(node(&id, "Http"));
        edges.push(edge(&previous, &id));
        previous = id;
    }
    pb::Template {
        nodes,
        edges,
        ..Default::default()
    }
}

/// A template node.
pub fn node(id: &str, node_type: &str) -> pb::Node {
    pb::Node {
        id: id.into(),
        r#type: node_type.into(),
        name: id.to_uppercase(),
        data: None,
    }
}

/// A template edge.
pub fn edge(source: &str, target: &str) -> pb::Edge {
    pb::Edge {
        source: source.into(),
        target: target.into(),
    }
}

/// Starts an execution of `template` with key `key`.
pub async fn start(
    client: &mut ExecutionServiceClient<Channel>,
    key: &str,
    template: pb::Template,
) -> pb::Execution {
    client
        .start_execution(pb::StartExecutionRequest {
            key: key.into(),
            name: format!("{key} run"),
            template: Some(template),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
}

/// An UpdateAction request.
pub fn report(execution_id: &str, node_id: &str, status: ActionStatus) -> pb::UpdateActionRequest {
    pb::UpdateActionRequest {
        execution_id: execution_id.into(),
        node_id: node_id.into(),
        status: status as i32,
        scheduled_at: (status == ActionStatus::Scheduled).then_some(prost_types::Timestamp {
            seconds: 1_900_000_000,
            nanos: 0,
        }),
        failure_note: if status == ActionStatus::Failed {
            "worker crashed".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

/// Reports `status` for an action and returns the execution.
pub async fn update(
    client: &mut ExecutionServiceClient<Channel>,
    execution_id: &str,
    node_id: &str,
    status: ActionStatus,
) -> pb::Execution {
    client
        .update_action(report(execution_id, node_id, status))
        .await
        .unwrap_or_else(|e| panic!("update {node_id} to {status:?}: {e:?}"))
        .into_inner()
}

/// Reads an execution (FULL view).
pub async fn get(client: &mut ExecutionServiceClient<Channel>, id: &str) -> pb::Execution {
    client
        .get_execution(pb::GetExecutionRequest {
            id: id.into(),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner()
}

/// Asserts a status's code and ErrorInfo reason (domain `executions`), and, when given,
/// the field its BadRequest violation names.
pub fn assert_error(status: &tonic::Status, code: tonic::Code, reason: &str, field: Option<&str>) {
    assert_eq!(status.code(), code, "code of {status:?}");
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "reason of {status:?}");
    assert_eq!(info.domain, ERROR_DOMAIN);
    if let Some(field) = field {
        let violations = &details
            .bad_request()
            .unwrap_or_else(|| panic!("no BadRequest in {status:?}"))
            .field_violations;
        assert!(
            violations.iter().any(|v| v.field == field),
            "no violation of {field} in {violations:?}"
        );
    }
    assert!(!status.message().is_empty());
}

/// Status of an action in an execution's stats.
pub fn action_status(execution: &pb::Execution, node_id: &str) -> ActionStatus {
    match execution.stats.get(node_id).and_then(|s| s.kind.as_ref()) {
        Some(pb::stat::Kind::Action(a)) => a.status(),
        other => panic!("no action stat for {node_id}: {other:?}"),
    }
}

/// Status of an edge in an execution's stats.
pub fn edge_status(execution: &pb::Execution, edge_id: &str) -> pb::EdgeStatus {
    match execution.stats.get(edge_id).and_then(|s| s.kind.as_ref()) {
        Some(pb::stat::Kind::Edge(e)) => e.status(),
        other => panic!("no edge stat for {edge_id}: {other:?}"),
    }
}

/// Checks the invariants every stored execution keeps: counts equal the tallies of its
/// stats and add up to `actions_count`; a STOPPED execution has no unfinished action.
pub fn assert_consistent(e: &pb::Execution) {
    let mut tally = std::collections::HashMap::new();
    for stat in e.stats.values() {
        if let Some(pb::stat::Kind::Action(a)) = &stat.kind {
            *tally.entry(a.status()).or_insert(0) += 1;
        }
    }
    let count = |s| *tally.get(&s).unwrap_or(&0);
    for (counted, status) in [
        (e.idle_actions_count, ActionStatus::Idle),
        (e.scheduled_actions_count, ActionStatus::Scheduled),
        (e.running_actions_count, ActionStatus::Running),
        (e.completed_actions_count, ActionStatus::Completed),
        (e.failed_actions_count, ActionStatus::Failed),
        (e.stopped_actions_count, ActionStatus::Stopped),
    ] {
        assert_eq!(counted, count(status), "{status:?} count of {}", e.id);
    }
    assert_eq!(
        e.actions_count,
        e.idle_actions_count
            + e.scheduled_actions_count
            + e.running_actions_count
            + e.completed_actions_count
            + e.failed_actions_count
            + e.stopped_actions_count,
        "counts of {} add up",
        e.id
    );
    if e.status() == ExecutionStatus::Stopped {
        assert_eq!(
            e.idle_actions_count + e.scheduled_actions_count + e.running_actions_count,
            0
        );
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A `grpc.health.v1.Health/Watch` stream of `service` on its own connection.
pub async fn health_watch(
    server: &TestServer,
    service: &str,
) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health watch")
        .into_inner()
}

/// Waits (up to 10 s) until both health entries report `expected`.
pub async fn assert_health(server: &TestServer, expected: ServingStatus) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for _ in 0..100 {
        let mut all = true;
        for service in ["", "workflow.executions.v1.ExecutionService"] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status();
            all &= status == expected;
        }
        if all {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("health did not become {expected:?} within 10 s");
}
