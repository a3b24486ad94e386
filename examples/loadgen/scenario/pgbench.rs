//! pgbench, the PostgreSQL baselines of `get` (`pgbench -S`) and `update` (TPC-B), run with
//! the load's client count in a scratch database of its own on the same server.

use std::process::Command;

use super::wait_quiet;
use crate::Session;
use crate::report::Figures;

impl Session {
    /// Runs pgbench with `script_args` (`-S`, or none for TPC-B) with `--concurrency`
    /// clients for `--duration` s in a scratch database on the same PostgreSQL server
    /// (initialised once with `-s 10`). `None` off PostgreSQL or with `--no-pgbench`.
    pub async fn pgbench(&mut self, script_args: &[&str]) -> anyhow::Result<Option<f64>> {
        let Some(dbs) = self.dbs.as_mut() else {
            return Ok(None);
        };
        if !dbs.is_postgres() || self.opts.no_pgbench {
            return Ok(None);
        }
        let binary = self.opts.pgbench.clone();
        let database = match &self.pgbench_db {
            Some(name) => name.clone(),
            None => {
                let name = dbs
                    .scratch(&format!("loadgen_pgbench_{}", std::process::id()))
                    .await?;
                println!("  pgbench -i -s 10 {name}");
                let (b, u) = (binary.clone(), dbs.libpq_url(&name)?);
                tokio::task::spawn_blocking(move || pgbench_init(&b, &u, 10)).await??;
                self.pgbench_db = Some(name.clone());
                name
            }
        };
        let url = dbs.libpq_url(&database)?;
        let clients = self.opts.concurrency.max(1);
        let mut args: Vec<String> = script_args.iter().map(|a| (*a).to_owned()).collect();
        args.extend([
            "-c".into(),
            clients.to_string(),
            "-j".into(),
            clients.min(2).to_string(),
            "-T".into(),
            (self.opts.duration.ceil() as u64).max(1).to_string(),
        ]);
        let mut runs = Vec::new();
        for run in 0..self.opts.runs.max(1) {
            if self.opts.wait_quiet {
                wait_quiet().await;
            }
            // As before each run of the server's load (`Session::measure`).
            dbs.checkpoint().await;
            let (b, u, a) = (binary.clone(), url.clone(), args.clone());
            let tps = tokio::task::spawn_blocking(move || run_pgbench(&b, &u, &a)).await??;
            println!("  pgbench {} #{}: {tps:.0} TPS", args.join(" "), run + 1);
            runs.push(tps);
        }
        runs.sort_by(f64::total_cmp);
        let tps = runs[runs.len() / 2];
        self.summary.row(
            format!("pgbench {} (baseline, TPS)", args.join(" ")),
            &Figures {
                per_second: tps,
                ..Default::default()
            },
        );
        Ok(Some(tps))
    }
}

/// Runs pgbench with `args` against the database at `url` (see
/// [`crate::database::Databases::libpq_url`]) and returns its TPS (without initial
/// connection time).
fn run_pgbench(binary: &str, url: &str, args: &[String]) -> anyhow::Result<f64> {
    let output = Command::new(binary).args(args).arg(url).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        anyhow::bail!(
            "pgbench {args:?} failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {stdout}"))
}

/// `pgbench -i -s scale` into the database at `url`.
fn pgbench_init(binary: &str, url: &str, scale: u32) -> anyhow::Result<()> {
    let output = Command::new(binary)
        .args(["-i", "-q", "-s", &scale.to_string()])
        .arg(url)
        .output()?;
    if !output.status.success() {
        anyhow::bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
