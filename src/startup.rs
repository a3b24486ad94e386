//! What `executions serve` checks about its database URL before it connects, so that a
//! mistake is explained in words a person can act on rather than as a driver's error: a
//! scheme no driver serves (the supported ones are listed), a SQLite file in a folder that
//! does not exist (named), a PostgreSQL server that does not answer (its host and port,
//! at once rather than after the pool's timeout). A SQLite file is created when missing.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;

/// How long the PostgreSQL server has to accept a TCP connection.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL to connect with: `url` checked, and for SQLite with `mode=rwc` added when
/// it names no mode, so that a missing file is created.
pub async fn database_url(url: &str) -> anyhow::Result<String> {
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme)
        .unwrap_or_default();
    match scheme {
        "sqlite" => sqlite(url),
        "postgres" | "postgresql" => {
            reach_postgres(url).await?;
            Ok(url.to_owned())
        }
        _ => bail!(
            "unsupported database URL `{}`: use sqlite://FILE (embedded) or \
             postgres://USER[:PASSWORD]@HOST[:PORT]/DB (postgresql:// works too)",
            crate::redact(url)
        ),
    }
}

fn sqlite(url: &str) -> anyhow::Result<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.is_empty() && path != ":memory:" {
        let folder = Path::new(path).parent().unwrap_or(Path::new(""));
        if !folder.as_os_str().is_empty() && !folder.is_dir() {
            bail!(
                "cannot create the SQLite file {path}: the folder {} does not exist \
                 (create it first, or choose another path)",
                folder.display()
            );
        }
    }
    if query.split('&').any(|pair| pair.starts_with("mode=")) {
        return Ok(url.to_owned());
    }
    let separator = if query.is_empty() && !url.ends_with('?') {
        "?"
    } else if url.ends_with('?') || url.ends_with('&') {
        ""
    } else {
        "&"
    };
    Ok(format!("{url}{separator}mode=rwc"))
}

/// Fails at once, naming host and port, when nothing accepts connections there.
async fn reach_postgres(url: &str) -> anyhow::Result<()> {
    let Ok(parsed) = url::Url::parse(url) else {
        bail!("`{}` is not a valid PostgreSQL URL", crate::redact(url));
    };
    // No host: a Unix socket named in the query, which the driver handles.
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let port = parsed.port().unwrap_or(5432);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            bail!("cannot reach PostgreSQL: connection refused at {host}:{port} (is it running?)")
        }
        Ok(Err(err)) => bail!("cannot reach PostgreSQL at {host}:{port}: {err}"),
        Err(_) => bail!(
            "cannot reach PostgreSQL at {host}:{port}: no answer within {} s",
            REACH_TIMEOUT.as_secs()
        ),
    }
}

/// An error and its causes on one line, each said once: wrapped errors often repeat
/// their source in their own message (`Connection Error: X`, then `X`). PostgreSQL's
/// `at line N` (a line of its own C source) is left out.
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(error);
    while let Some(error) = next {
        let mut text = error.to_string();
        if let Some((before, line)) = text.rsplit_once(" at line ")
            && !line.is_empty()
            && line.chars().all(|c| c.is_ascii_digit())
        {
            text = before.to_owned();
        }
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
    parts.retain(|p| p != "transport error");
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_are_checked_and_explained() {
        let unknown = database_url("postgress://u:pw@h/db")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("sqlite://") && unknown.contains("postgres://"),
            "{unknown}"
        );
        assert!(!unknown.contains("pw"), "{unknown}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.db");
        let url = format!("sqlite://{}", file.display());
        assert_eq!(database_url(&url).await.unwrap(), format!("{url}?mode=rwc"));
        let ro = format!("{url}?mode=ro");
        assert_eq!(database_url(&ro).await.unwrap(), ro);
        let other = format!("{url}?cache=shared");
        assert_eq!(
            database_url(&other).await.unwrap(),
            format!("{other}&mode=rwc")
        );
        let missing = dir.path().join("no/such/x.db");
        let said = database_url(&format!("sqlite://{}", missing.display()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            said.contains(&dir.path().join("no/such").display().to_string()),
            "{said}"
        );

        // A port nobody listens on: refused at once, named.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let refused = database_url(&format!("postgres://u@127.0.0.1:{port}/db"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(&format!("connection refused at 127.0.0.1:{port}")),
            "{refused}"
        );
    }

    #[test]
    fn causes_are_said_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "Connection Error: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::other(
            "database \"x\" does not exist at line 948",
        ));
        assert_eq!(
            causes(&error),
            "Connection Error: database \"x\" does not exist"
        );
    }
}
