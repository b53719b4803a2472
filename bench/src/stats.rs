//! Medians, percentiles, and the markdown table the harness prints.

use std::fmt::Write as _;

/// The median of `samples` (sorted in place).
pub fn median(samples: &mut [f64]) -> f64 {
    percentile(samples, 50.0)
}

/// The `p`-th percentile (nearest rank) of `samples` (sorted in place).
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// One line of the results table.
pub struct Row {
    /// What is measured.
    pub scenario: String,
    /// cachemacro's figure.
    pub ours: String,
    /// The baseline's figure, named.
    pub baseline: String,
    /// ours / baseline.
    pub ratio: String,
    /// The target ratio.
    pub target: String,
    /// Whether the target was met.
    pub verdict: &'static str,
}

/// The results table, in markdown.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// Adds a row and echoes it, so a long run shows progress.
    pub fn push(&mut self, row: Row) {
        eprintln!(
            "  {} | {} | {} | {} | {} | {}",
            row.scenario, row.ours, row.baseline, row.ratio, row.target, row.verdict
        );
        self.rows.push(row);
    }

    /// A row comparing `ours` with `baseline` where lower is better, against `limit`
    /// (ours / baseline must be at most `limit`).
    pub fn lower_is_better(
        &mut self,
        scenario: &str,
        unit: &str,
        ours: f64,
        baseline: (&str, f64),
        limit: Option<f64>,
    ) {
        self.compare(scenario, unit, 3, ours, baseline, limit.map(|l| ('≤', l)));
    }

    /// A row where higher is better (throughput): ours / baseline must be at least `limit`.
    pub fn higher_is_better(
        &mut self,
        scenario: &str,
        unit: &str,
        ours: f64,
        baseline: (&str, f64),
        limit: Option<f64>,
    ) {
        self.compare(scenario, unit, 0, ours, baseline, limit.map(|l| ('≥', l)));
    }

    /// A row of ours against `baseline`, figures with `decimals`, and the ratio's target as
    /// `('≤' | '≥', limit)`.
    fn compare(
        &mut self,
        scenario: &str,
        unit: &str,
        decimals: usize,
        ours: f64,
        (name, base): (&str, f64),
        target: Option<(char, f64)>,
    ) {
        let ratio = ours / base;
        self.push(Row {
            scenario: scenario.into(),
            ours: format!("{ours:.decimals$} {unit}"),
            baseline: format!("{name}: {base:.decimals$} {unit}"),
            ratio: format!("{ratio:.3}×"),
            target: target.map_or("-".into(), |(op, l)| format!("{op} {l:.2}×")),
            verdict: verdict(target.map(|(op, l)| if op == '≤' { ratio <= l } else { ratio >= l })),
        });
    }

    /// The table as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| scenario | cachemacro | baseline | ratio | target | met |\n|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.scenario, r.ours, r.baseline, r.ratio, r.target, r.verdict
            );
        }
        out
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "-",
    }
}
