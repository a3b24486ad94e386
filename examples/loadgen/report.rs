//! The figures of a measured scenario and the two tables printed at the end: one row per
//! scenario (throughput, latency percentiles, errors) and one per comparison with its
//! baseline (ratio, target, met).

use crate::drive::Report;

/// Throughput and latency of one operation (median over runs when repeated).
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Successful calls per second of the measured window.
    pub per_second: f64,
    /// Latency percentiles, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// 99.9th percentile, ms.
    pub p999: f64,
    /// Calls recorded.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
}

impl Figures {
    /// The figures of `op` in `report` (zero when it made no call).
    pub fn of(report: &Report, op: &str) -> Self {
        let Some(stats) = report.ops.get(op) else {
            return Self::default();
        };
        let h = &stats.latency;
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
        Self {
            per_second: h.len() as f64 / report.window.as_secs_f64(),
            p50: ms(0.5),
            p99: ms(0.99),
            p999: ms(0.999),
            calls: h.len(),
            errors: stats.errors,
        }
    }

    /// Each figure's median over `runs`; errors are summed.
    pub fn median(runs: &[Figures]) -> Self {
        let mid = |f: fn(&Figures) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or_default()
        };
        Self {
            per_second: mid(|f| f.per_second),
            p50: mid(|f| f.p50),
            p99: mid(|f| f.p99),
            p999: mid(|f| f.p999),
            calls: runs.iter().map(|f| f.calls).sum(),
            errors: runs.iter().map(|f| f.errors).sum(),
        }
    }

    /// One line for the progress log.
    pub fn line(&self) -> String {
        format!(
            "{:>9.0} calls/s  p50 {:>8.3} ms  p99 {:>8.3} ms  p99.9 {:>8.3} ms  ({} calls, {} errors)",
            self.per_second, self.p50, self.p99, self.p999, self.calls, self.errors
        )
    }
}

/// A comparison with a baseline, and whether it meets its target.
pub struct Check {
    /// What is compared.
    pub what: String,
    /// The measured figure, as text.
    pub measured: String,
    /// The baseline figure, as text.
    pub baseline: String,
    /// The ratio or value that the target bounds.
    pub ratio: f64,
    /// The target, as text (e.g. `≥ 0.5`).
    pub target: String,
    /// Met?
    pub met: bool,
}

/// Everything measured in this run, printed at the end.
#[derive(Default)]
pub struct Summary {
    /// (scenario, figures).
    pub rows: Vec<(String, Figures)>,
    /// Comparisons.
    pub checks: Vec<Check>,
    /// Free-form notes (RSS samples, seeding time...).
    pub notes: Vec<String>,
}

impl Summary {
    /// Adds a scenario row.
    pub fn row(&mut self, scenario: impl Into<String>, figures: &Figures) {
        self.rows.push((scenario.into(), figures.clone()));
    }

    /// Prints a note and keeps it for the end.
    pub fn note(&mut self, note: String) {
        println!("  {note}");
        self.notes.push(note);
    }

    /// Adds a throughput comparison: `measured` calls/s against a `baseline` rate (`unit`:
    /// `/s` or ` TPS`), which it must reach `min` times.
    pub fn check_rate(
        &mut self,
        what: impl Into<String>,
        measured: f64,
        baseline: f64,
        unit: &str,
        min: f64,
    ) {
        self.check(
            what,
            format!("{measured:.0}/s"),
            format!("{baseline:.0}{unit}"),
            measured / baseline,
            Bound::AtLeast(min),
        );
    }

    /// Adds a latency comparison: `measured`'s p50 at most `max` times `baseline`'s.
    pub fn check_p50(
        &mut self,
        what: impl Into<String>,
        measured: &Figures,
        baseline: &Figures,
        max: f64,
    ) {
        self.check(
            what,
            format!("{:.3} ms", measured.p50),
            format!("{:.3} ms", baseline.p50),
            measured.p50 / baseline.p50,
            Bound::AtMost(max),
        );
    }

    /// Adds a comparison: `ratio` must be at least `min` or at most `max`.
    pub fn check(
        &mut self,
        what: impl Into<String>,
        measured: String,
        baseline: String,
        ratio: f64,
        bound: Bound,
    ) {
        let (met, target) = match bound {
            Bound::AtLeast(min) => (ratio >= min, format!("≥ {min}")),
            Bound::AtMost(max) => (ratio <= max, format!("≤ {max}")),
        };
        let check = Check {
            what: what.into(),
            measured,
            baseline,
            ratio,
            target,
            met,
        };
        println!(
            "  => {}: {} vs {} → {:.2} (target {}) {}",
            check.what,
            check.measured,
            check.baseline,
            check.ratio,
            check.target,
            if check.met { "MET" } else { "NOT MET" }
        );
        self.checks.push(check);
    }

    /// Prints both tables (Markdown).
    pub fn print(&self) {
        println!();
        println!("| scenario | calls/s | p50 ms | p99 ms | p99.9 ms | errors |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (scenario, f) in &self.rows {
            println!(
                "| {scenario} | {:.0} | {:.3} | {:.3} | {:.3} | {} |",
                f.per_second, f.p50, f.p99, f.p999, f.errors
            );
        }
        if !self.checks.is_empty() {
            println!();
            println!("| comparison | measured | baseline | ratio | target | met? |");
            println!("|---|---|---|---:|---|---|");
            for c in &self.checks {
                println!(
                    "| {} | {} | {} | {:.2} | {} | {} |",
                    c.what,
                    c.measured,
                    c.baseline,
                    c.ratio,
                    c.target,
                    if c.met { "yes" } else { "**no**" }
                );
            }
        }
        for note in &self.notes {
            println!("- {note}");
        }
    }
}

/// Which way a target bounds a ratio.
pub enum Bound {
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The ratio must be at most this.
    AtMost(f64),
}
