//! The databases tests run on: a SQLite file in a temporary folder, or a PostgreSQL
//! database of its own on the server that `TEST_DATABASE_URL` names.
//!
//! A PostgreSQL test database is named after its test (`it_<test>_<random>`) and dropped
//! when its [`PostgresDatabase`] is dropped, even when the test panics. To check that no
//! run leaves one behind:
//!
//! ```text
//! psql -h 127.0.0.1 -U postgres -Atc "select datname from pg_database where datname like 'it_%'"
//! ```
//!
//! must list nothing after `cargo test --test it` has finished (`tests/leftover_databases.sh`
//! runs it and fails when it lists any).

use std::io::Write;

use sea_orm::ConnectionTrait;
use url::Url;

/// The kinds of database the suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file; always available.
    Sqlite,
    /// A PostgreSQL database; available when `TEST_DATABASE_URL` is set.
    Postgres,
}

impl Backend {
    /// Whether tests can run on this backend here: PostgreSQL needs `TEST_DATABASE_URL`.
    pub fn available(self) -> bool {
        match self {
            Backend::Sqlite => true,
            Backend::Postgres => admin_url().is_some(),
        }
    }
}

/// A database of a test, removed when dropped.
pub enum TestDatabase {
    /// A SQLite file.
    Sqlite(SqliteFile),
    /// A PostgreSQL database.
    Postgres(PostgresDatabase),
}

impl TestDatabase {
    /// A new, empty (not migrated) database of `backend`, named after `test`.
    pub async fn create(backend: Backend, test: &str) -> Self {
        match backend {
            Backend::Sqlite => TestDatabase::Sqlite(SqliteFile::create(test)),
            Backend::Postgres => TestDatabase::Postgres(PostgresDatabase::create(test).await),
        }
    }

    /// Its kind.
    pub fn backend(&self) -> Backend {
        match self {
            TestDatabase::Sqlite(_) => Backend::Sqlite,
            TestDatabase::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL to connect to it with.
    pub fn url(&self) -> &str {
        match self {
            TestDatabase::Sqlite(file) => &file.url,
            TestDatabase::Postgres(database) => &database.url,
        }
    }
}

/// A SQLite file in a temporary folder of its own, removed (folder and all) when dropped.
pub struct SqliteFile {
    url: String,
    _dir: tempfile::TempDir,
}

impl SqliteFile {
    fn create(test: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("it_{}_", sanitise(test)))
            .tempdir()
            .expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Self { url, _dir: dir }
    }
}

/// A PostgreSQL database of one test, dropped (`WITH (FORCE)`) when this is dropped.
pub struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    /// Creates a new, empty (not migrated) database named after `test`. Panics when
    /// `TEST_DATABASE_URL` is not set: check [`Backend::available`] first.
    pub async fn create(test: &str) -> Self {
        let admin_url =
            admin_url().expect("TEST_DATABASE_URL is set (check Backend::Postgres.available())");
        let name = database_name(test);
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create a test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL to connect to it with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection to the PostgreSQL server as its admin (`TEST_DATABASE_URL`), to
    /// change the database or its connections from outside.
    pub async fn admin(&self) -> sea_orm::DatabaseConnection {
        sea_orm::Database::connect(&self.admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL")
    }

    /// How many statements of this database's sessions wait for a lock now.
    pub async fn statements_waiting_for_locks(&self) -> i64 {
        let waiting = format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
            self.name
        );
        let admin = self.admin().await;
        let row = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                waiting,
            ))
            .await
            .expect("read pg_stat_activity")
            .expect("a count");
        admin.close().await.ok();
        row.try_get("", "n").expect("a count")
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // `drop` cannot await, and it may run while a test unwinds inside its runtime: drop
        // the database from a thread of its own, on a runtime of its own, and wait for it.
        // FORCE ends the connections a server that is still shutting down holds.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                let result = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
                admin.close().await.ok();
                result.map(drop).map_err(|e| e.to_string())
            })
        })
        .join();
        let failure = match dropped {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(_) => "the dropping thread panicked".to_owned(),
        };
        // Never panic here (it may run during a panic): say it, past the test's capture.
        let _ = writeln!(
            std::io::stderr(),
            "WARNING: test database {} was not dropped: {failure}",
            self.name
        );
    }
}

/// The name of the running test: libtest names a test's thread after the test
/// (`module::test`, and `module::test::sqlite` for a [`db_tests!`](crate::db_tests) test).
pub fn this_test() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("unnamed");
    name.rsplit("::")
        .find(|part| !matches!(*part, "sqlite" | "postgres"))
        .unwrap_or(name)
        .to_owned()
}

/// Longest database name made here: 3 bytes under PostgreSQL's 63-byte identifier limit,
/// so that a name derived from it with a short suffix (a test's role `<db>_b`) fits too.
const MAX_NAME: usize = 60;

/// `it_<test>_<8 random hex digits>`, in lowercase ASCII letters, digits and `_` (the test
/// part shortened to fit [`MAX_NAME`]).
fn database_name(test: &str) -> String {
    let suffix = format!("_{:08x}", rand::random::<u32>());
    let mut test = sanitise(test);
    test.truncate(MAX_NAME - "it_".len() - suffix.len());
    format!("it_{test}{suffix}")
}

/// `name` with every character that is not an ASCII letter or digit as `_`, lowercased.
fn sanitise(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `url` with its path (the database name) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let mut url = Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{database}"));
    url.into()
}

/// `url` connecting as `user` (without a password).
pub fn with_user(url: &str, user: &str) -> String {
    let mut url = Url::parse(url).expect("a database URL");
    url.set_username(user)
        .and_then(|()| url.set_password(None))
        .expect("a database URL with a host");
    url.into()
}

/// `TEST_DATABASE_URL`, when set.
fn admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}
