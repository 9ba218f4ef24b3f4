//! The suite's tables, in Markdown: the median over the runs of each figure of each system.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::{Figures, System};

/// Every run's figures of each system measured.
pub type Results = BTreeMap<System, Vec<Figures>>;

/// Calls per closed loop.
#[derive(Clone, Copy)]
pub struct Calls {
    pub each: u64,
    pub n8n: u64,
}

/// The figures every system has a column for (n/a where one does not have the figure).
const FIGURES: [&str; 12] = [
    "start-up (ms)",
    "memory idle (MiB)",
    "memory loaded (MiB)",
    "GET requests/s",
    "GET p99 (ms)",
    "POST requests/s",
    "POST p99 (ms)",
    "event → webhook p50 (ms)",
    "event → webhook p99 (ms)",
    "webhook → HTTP p50 (ms)",
    "webhook → HTTP p99 (ms)",
    "webhook → HTTP runs/s",
];

fn median_of(results: &Results, system: System, figure: &str) -> Option<f64> {
    let mut values: Vec<f64> = results
        .get(&system)?
        .iter()
        .filter_map(|f| f.get(figure).copied())
        .collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Two significant places below 10, none from 100: `0.043`, `1.2`, `36`, `2588`.
fn number(value: f64) -> String {
    match value {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 10.0 => format!("{v:.1}"),
        v if v >= 1.0 => format!("{v:.2}"),
        v => format!("{v:.3}"),
    }
}

/// One column a system, one row a figure.
pub fn figures_table(results: &Results, runs: usize) -> String {
    let systems: Vec<System> = peers(results).collect();
    let names: Vec<&str> = systems.iter().map(|s| s.name()).collect();
    let mut out = format!("| median of {runs} | {} |\n", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(systems.len()));
    for figure in FIGURES {
        let cells: Vec<String> = systems
            .iter()
            .map(|&s| median_of(results, s, figure).map_or("n/a".into(), number))
            .collect();
        let _ = writeln!(out, "| {figure} | {} |", cells.join(" | "));
    }
    out
}

/// The peers' workload, as issue 23 asks for it: one row a system, then how timix compares.
pub fn peers_table(results: &Results, runs: usize, calls: Calls) -> String {
    let mut out = format!(
        "The peers' workload: inbound webhook → HTTP POST to the receiver, closed loop, \
         {} calls a loop (n8n: {}), median of {runs}\n\n",
        calls.each, calls.n8n
    );
    out.push_str(
        "| | c=1 runs/s | c=1 p50 | c=8 runs/s | c=32 runs/s | c=32 p50 | c=32 p99 | CPU per run | idle RSS |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for system in peers(results) {
        let cell = |figure: &str, unit: &str| {
            median_of(results, system, figure).map_or("n/a".into(), |v| number(v) + unit)
        };
        let cpu = match median_of(results, system, "server CPU per run (ms)") {
            Some(server) => format!(
                "{} + {} ms server",
                cell("CPU per run (ms)", " ms"),
                number(server)
            ),
            None => cell("CPU per run (ms)", " ms"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {cpu} | {} |",
            system.name(),
            cell("c=1 runs/s", ""),
            cell("c=1 p50 (ms)", " ms"),
            cell("c=8 runs/s", ""),
            cell("c=32 runs/s", ""),
            cell("c=32 p50 (ms)", " ms"),
            cell("c=32 p99 (ms)", " ms"),
            cell("memory idle (MiB)", " MiB"),
        );
    }
    out.push('\n');
    for system in peers(results) {
        if let Some(refused) = median_of(results, system, "refused, sent again")
            && refused > 0.0
        {
            let _ = writeln!(
                out,
                "- {}: {refused:.0} calls answered other than 2xx and sent again",
                system.name()
            );
        }
    }
    for timix in [System::TimixSqlite, System::TimixPostgres] {
        for peer in [System::NodeRed, System::N8n] {
            if let Some(line) = ratios(results, timix, peer) {
                out.push_str(&line);
            }
        }
    }
    out
}

/// The systems of the main tables: all but the scale-out runs.
fn peers(results: &Results) -> impl Iterator<Item = System> + '_ {
    results.keys().copied().filter(|s| !s.scales_out())
}

/// Scale-out on Postgres: runs per second and CPU per run (every timix process and the database
/// server) with one worker process and with two, and how many runs were executed twice.
pub fn scale_out_table(results: &Results, runs: usize, calls: Calls) -> String {
    let mut out = format!(
        "Scale-out on one Postgres: an API process takes the calls, worker processes execute \
         the runs; closed loop, {} calls a loop, median of {runs}\n\n",
        calls.each
    );
    out.push_str(
        "| | c=8 runs/s | c=32 runs/s | CPU per run (timix) | CPU per run (server) | CPU per run (all) | runs executed twice |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for system in results.keys().copied().filter(|s| s.scales_out()) {
        let value = |figure: &str| median_of(results, system, figure);
        let cell =
            |figure: &str, unit: &str| value(figure).map_or("n/a".into(), |v| number(v) + unit);
        let all = match (value("CPU per run (ms)"), value("server CPU per run (ms)")) {
            (Some(timix), Some(server)) => number(timix + server) + " ms",
            _ => "n/a".into(),
        };
        // Any run executed twice in any of the runs, not the median.
        let twice: f64 = results[&system]
            .iter()
            .filter_map(|f| f.get("runs executed twice"))
            .sum();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {all} | {twice:.0} |",
            system.name(),
            cell("c=8 runs/s", ""),
            cell("c=32 runs/s", ""),
            cell("CPU per run (ms)", " ms"),
            cell("server CPU per run (ms)", " ms"),
        );
    }
    out
}

/// How `timix` compares with `peer`: runs per second at c=8 and c=32, and CPU per run (with the
/// database server's for timix on Postgres).
fn ratios(results: &Results, timix: System, peer: System) -> Option<String> {
    let ratio =
        |figure: &str| Some(median_of(results, timix, figure)? / median_of(results, peer, figure)?);
    let cpu = median_of(results, timix, "CPU per run (ms)")?
        + median_of(results, timix, "server CPU per run (ms)").unwrap_or(0.0);
    Some(format!(
        "- {} ÷ {}: {}× the runs/s at c=8, {}× at c=32; {}× the CPU per run\n",
        timix.name(),
        peer.name(),
        number(ratio("c=8 runs/s")?),
        number(ratio("c=32 runs/s")?),
        number(cpu / median_of(results, peer, "CPU per run (ms)")?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(pairs: &[(&'static str, f64)]) -> Figures {
        pairs.iter().copied().collect()
    }

    fn results() -> Results {
        let node_red = |rate: f64| {
            figures(&[
                ("c=8 runs/s", rate),
                ("c=32 runs/s", 2.0 * rate),
                ("CPU per run (ms)", 0.3),
            ])
        };
        Results::from([
            (
                System::NodeRed,
                vec![node_red(1000.0), node_red(3000.0), node_red(2000.0)],
            ),
            (
                System::TimixPostgres,
                vec![figures(&[
                    ("c=8 runs/s", 1000.0),
                    ("c=32 runs/s", 8000.0),
                    ("CPU per run (ms)", 0.5),
                    ("server CPU per run (ms)", 0.4),
                    ("memory idle (MiB)", 37.0),
                    ("refused, sent again", 5.0),
                ])],
            ),
        ])
    }

    #[test]
    fn takes_the_median_of_the_runs() {
        assert_eq!(
            median_of(&results(), System::NodeRed, "c=8 runs/s"),
            Some(2000.0)
        );
        assert_eq!(median_of(&results(), System::NodeRed, "missing"), None);
    }

    #[test]
    fn the_peers_table_has_a_row_a_system_and_the_ratios_to_node_red() {
        let calls = Calls {
            each: 2000,
            n8n: 1000,
        };
        let table = peers_table(&results(), 3, calls);
        assert!(
            table.contains(
                "| timix (Postgres) | n/a | n/a | 1000 | 8000 | n/a | n/a | 0.500 ms + 0.400 ms server | 37.0 MiB |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "- timix (Postgres) ÷ Node-RED (keeps nothing): 0.500× the runs/s at c=8, \
                 2.00× at c=32; 3.00× the CPU per run"
            ),
            "{table}"
        );
        assert!(
            table.contains("- timix (Postgres): 5 calls answered other than 2xx and sent again"),
            "{table}"
        );
        // No n8n in the results: no line compares with it.
        assert!(!table.contains("÷ n8n"), "{table}");
    }

    #[test]
    fn a_figure_a_system_lacks_is_not_available() {
        let table = figures_table(&results(), 3);
        assert!(
            table.contains("| memory idle (MiB) | n/a | 37.0 |"),
            "{table}"
        );
    }

    #[test]
    fn the_scale_out_table_sums_the_cpu_and_counts_every_run_executed_twice() {
        let mut results = results();
        let run = |rate: f64, twice: f64| {
            figures(&[
                ("c=8 runs/s", rate),
                ("c=32 runs/s", rate),
                ("CPU per run (ms)", 0.5),
                ("server CPU per run (ms)", 0.25),
                ("runs executed twice", twice),
            ])
        };
        results.insert(
            System::ScaleOut(2),
            vec![run(900.0, 0.0), run(1100.0, 2.0), run(1000.0, 0.0)],
        );
        let calls = Calls {
            each: 2000,
            n8n: 1000,
        };
        let table = scale_out_table(&results, 3, calls);
        assert!(
            table.contains(
                "| timix (Postgres), API + 2 worker processes | 1000 | 1000 | 0.500 ms | 0.250 ms | 0.750 ms | 2 |"
            ),
            "{table}"
        );
        // The other tables leave it out.
        assert!(!peers_table(&results, 3, calls).contains("worker processes"));
        assert!(!figures_table(&results, 3).contains("worker processes"));
    }
}
