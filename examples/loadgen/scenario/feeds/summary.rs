//! The end of `feeds`: the summary's rows (median of the runs), its comparisons with the
//! targets of issue 12, and notes on what else was measured.

use super::window::Measured;
use super::{Plan, Results};
use crate::Session;
use crate::report::{Bound, Figures};

/// Targets of issue 12.
const P99_MS: f64 = 250.0;
const READS_PER_CHANGE: f64 = 1.0;
const KIB_PER_IDLE_FEED: f64 = 16.0;

impl Session {
    /// The summary's rows, comparisons and notes.
    pub(super) fn feeds_summary(&mut self, p: &Plan, replica: bool, results: &Results) {
        let Results {
            alone,
            with_feeds,
            with_unread,
            with_watchers,
            per_feed,
            per_watcher,
            unread_rss,
            ..
        } = results;
        let median = |runs: &[Measured], f: fn(&Measured) -> Figures| {
            Figures::median(&runs.iter().map(f).collect::<Vec<_>>())
        };
        let where_ = if replica {
            ", followers on replica B"
        } else {
            ""
        };
        let rate = p.rate;
        let writes_alone = median(alone, |m| m.update.clone());
        let writes_feeds = median(with_feeds, |m| m.update.clone());
        let feeds = median(with_feeds, |m| m.delivered.clone());
        let feeds_send = median(with_feeds, |m| m.delivered_from_send.clone());
        let unread = median(with_unread, |m| m.delivered.clone());
        let watchers = median(with_watchers, |m| m.delivered.clone());
        let writes_watchers = median(with_watchers, |m| m.update.clone());
        let per_tenant = p.feeds / p.tenants;
        self.summary.row(
            format!("feeds: UpdateAction at {rate} changes/s, no feed open"),
            &writes_alone,
        );
        self.summary.row(
            format!(
                "feeds: UpdateAction at {rate} changes/s, {} feeds open{where_}",
                p.feeds
            ),
            &writes_feeds,
        );
        self.summary.row(format!("feeds: change (write's answer) → all {per_tenant} feeds of its tenant, {} feeds{where_}", p.feeds), &feeds);
        self.summary
            .row("  the same from the write's sending", &feeds_send);
        self.summary
            .row("  the same with one more feed nobody reads", &unread);
        self.summary.row(
            format!(
                "feeds: change (write's answer) → its one WatchExecution, {} watchers{where_}",
                p.executions
            ),
            &watchers,
        );
        self.summary
            .row("  UpdateAction meanwhile", &writes_watchers);

        self.summary.check(
            format!("feeds: p99 change → every matching feed, ms (vs one WatchExecution per execution){where_}"),
            format!("{:.1} ms", feeds.p99),
            format!("{:.1} ms", watchers.p99),
            feeds.p99,
            Bound::AtMost(P99_MS),
        );
        self.summary.check(
            "feeds: p99 of the other feeds with one feed nobody reads, ms (vs without it)",
            format!("{:.1} ms", unread.p99),
            format!("{:.1} ms", feeds.p99),
            unread.p99,
            Bound::AtMost(P99_MS),
        );
        let mid = |runs: &[Measured], f: fn(&Measured) -> Option<f64>| {
            let mut v: Vec<f64> = runs.iter().filter_map(f).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        if let Some(rounds) = mid(with_feeds, Measured::rounds_per_change) {
            let hub = mid(with_watchers, Measured::state_reads_per_change).unwrap_or_default();
            self.summary.check(
                format!("feeds: database reads per change on the feeds' replica (change reader rounds; vs the hub's reads for one WatchExecution per execution){where_}"),
                format!("{rounds:.3}"),
                format!("{hub:.3}"),
                rounds,
                Bound::AtMost(READS_PER_CHANGE),
            );
            self.summary.note(format!(
                "feeds: executions read per change by the feeds' change reader {:.3}; change reader rounds per change on the writes' server {:.3}; with the unread feed {:.3} rounds per change",
                mid(with_feeds, Measured::rows_per_change).unwrap_or_default(),
                mid(with_feeds, Measured::writer_rounds_per_change).unwrap_or_default(),
                mid(with_unread, Measured::rounds_per_change).unwrap_or_default(),
            ));
            let per_change = mid(with_feeds, Measured::updates_per_change).unwrap_or_default();
            let per_tenant = (p.feeds / p.tenants) as f64;
            self.summary.note(format!(
                "feeds: UPDATEs received per committed change {per_change:.3} for {per_tenant} feeds per tenant{}",
                if (per_change - per_tenant).abs() <= per_tenant * 0.005 {
                    ": each change reached each feed once, none fell behind and caught up from the database"
                } else {
                    ": changes were coalesced or repeated (feeds that fell behind catch up from the database, in reads the reader's count leaves out)"
                }
            ));
        }
        if let Some(per_feed) = *per_feed {
            self.summary.check(
                "feeds: server memory per idle feed, KiB (vs per idle WatchExecution)",
                format!("{per_feed:.2} KiB"),
                format!("{:.2} KiB", per_watcher.unwrap_or_default()),
                per_feed,
                Bound::AtMost(KIB_PER_IDLE_FEED),
            );
        }
        if !unread_rss.is_empty() {
            // Growth in KiB: around each window with the unread feed (opened just before
            // it), and over each window of the feeds alone, for comparison.
            let growth = |pairs: &mut dyn Iterator<Item = (u64, u64)>| {
                let mut v: Vec<i64> = pairs.map(|(b, a)| a as i64 - b as i64).collect();
                v.sort();
                v.get(v.len() / 2).map_or(0.0, |kib| *kib as f64 / 1024.0)
            };
            let (b, a) = unread_rss[unread_rss.len() / 2];
            self.summary.note(format!(
                "feeds: followers' server RSS from before the feed nobody reads opened to the end of its window: {:.1} → {:.1} MiB (median growth {:.2} MiB; over a window of the feeds alone {:.2} MiB)",
                b as f64 / 1024.0,
                a as f64 / 1024.0,
                growth(&mut unread_rss.iter().copied()),
                growth(&mut with_feeds.iter().filter_map(|m| m.rss)),
            ));
        }
        let cpu = |runs: &[Measured]| {
            let mut v: Vec<f64> = runs
                .iter()
                .filter_map(|m| m.server_cpu_ms_per_change(replica))
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        if let (Some(a), Some(f), Some(u), Some(w)) = (
            cpu(alone),
            cpu(with_feeds),
            cpu(with_unread),
            cpu(with_watchers),
        ) {
            self.summary.note(format!(
                "feeds: server CPU per committed change{}: writes alone {a:.2} ms, with the feeds {f:.2} ms, with the unread feed too {u:.2} ms, with the watchers instead {w:.2} ms",
                if replica { " (A and B)" } else { "" }
            ));
        }
        let skipped: u64 = [alone, with_feeds, with_unread, with_watchers]
            .iter()
            .flat_map(|runs| runs.iter().map(|m| m.skipped))
            .sum();
        if skipped > 0 {
            self.summary.note(format!(
                "feeds: the writer fell behind its {rate} changes/s and skipped {skipped} changes"
            ));
        }
    }
}
