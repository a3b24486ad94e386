//! SQLite on a full disk: a small tmpfs the test mounts (root only), filled up, then
//! freed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;
use tonic::Code;

use crate::harness::*;

/// A tmpfs of `size` mounted on a temporary folder; unmounted (lazily, so an open file
/// cannot keep it) and removed when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("faults_disk_")
            .tempdir()
            .unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs (needs root)");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the disk with a file of its own until the disk is full; returns the file.
fn fill(disk: &SmallDisk) -> PathBuf {
    let path = disk.path().join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    path
}

/// A StartExecution request carrying about 64 KiB of execution data.
fn big_start(key: &str) -> pb::StartExecutionRequest {
    pb::StartExecutionRequest {
        key: key.into(),
        name: key.into(),
        template: Some(fan(3)),
        execution_data: Some(to_struct(
            &serde_json::json!({ "blob": "x".repeat(64 * 1024) }),
        )),
        ..Default::default()
    }
}

/// SQLite's disk fills up: writes answer RESOURCE_EXHAUSTED or UNAVAILABLE (never
/// INTERNAL) with a reason saying so; reads keep working; nothing is half-written (the
/// refused starts do not exist, the counts add up); writes resume once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_root), ignore = "needs root, to mount a tmpfs")]
async fn sqlite_disk_full_refuses_writes_keeps_reads_and_recovers() {
    let disk = SmallDisk::mount("4m");
    let url = format!(
        "sqlite://{}?mode=rwc",
        disk.path().join("db.sqlite").display()
    );
    let server = TestServer::builder()
        .database_url(Backend::Sqlite, &url)
        .start()
        .await;
    let mut client = server.client.clone();
    let first = start(&mut client, "before-full", fan(3)).await;
    let mut acknowledged = vec![first.id.clone()];
    let filler = fill(&disk);

    // Write until refused (the WAL may have room left in pages it already holds).
    let mut refusal = None;
    for i in 0..200 {
        match client
            .start_execution(big_start(&format!("full-{i}")))
            .await
        {
            Ok(e) => acknowledged.push(e.into_inner().id),
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.expect("a write is refused once the disk is full");
    assert!(
        matches!(refusal.code(), Code::ResourceExhausted | Code::Unavailable),
        "disk full answers RESOURCE_EXHAUSTED or UNAVAILABLE: {refusal:?}"
    );
    let reason = error_reason(&refusal);
    assert_eq!(reason, "DATABASE_FULL", "{refusal:?}");
    let update = client
        .update_action(report(&first.id, "p0", ActionStatus::Running))
        .await;
    let update_code = match &update {
        Ok(_) => None,
        Err(status) => {
            assert!(
                matches!(status.code(), Code::ResourceExhausted | Code::Unavailable),
                "{status:?}"
            );
            Some(status.code())
        }
    };

    // Reads keep working.
    for id in &acknowledged {
        assert_eq!(get(&mut client, id).await.id, *id);
    }
    let count = client
        .count_executions(pb::CountExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, acknowledged.len() as i64, "no refused start stored");

    // Space freed: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut resumed = None;
    while freed.elapsed() < Duration::from_secs(10) {
        if let Ok(e) = client.start_execution(big_start("after")).await {
            resumed = Some(e.into_inner());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed = resumed.expect("writes resume within 10 s of freeing space");
    let progressed = update_code.is_none()
        || client
            .update_action(report(&first.id, "p0", ActionStatus::Running))
            .await
            .is_ok();
    assert!(progressed, "updates resume too");
    let stored = get(&mut client, &first.id).await;
    assert_consistent(&stored);
    crate::report_figures(&format!(
        "sqlite disk full: {} starts acknowledged before the refusal; refused with {:?} {reason}; \
         an update while full: {update_code:?}; reads kept working; writes resumed {:?} after freeing space (revision of the new one {})",
        acknowledged.len(),
        refusal.code(),
        freed.elapsed(),
        resumed.revision
    ));
    server.stop().await;
    drop(disk);
}
