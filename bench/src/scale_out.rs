//! Scale-out on Postgres: one API process (`--role api`) takes the peers' workload and one or
//! two worker processes (`--role worker`) execute its runs, all on one database. Each accepted
//! call is a queued run that a worker claims, so the workers compete for the same rows: the
//! receiver counts any call that arrives twice (a run executed twice).

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use timix_bench::{Server, bootstrap, counting_receiver, fresh_database_on, start_as};

use crate::closed_loop::closed_loop;
use crate::cpu::{CpuMeter, CpuUsed};
use crate::{Figures, Workflow, database_name, ms};

/// The loops of a scale-out run: queued runs at c=1 measure the queue's latency, not its
/// throughput.
const LOOPS: [(u64, &str); 2] = [(8, "c=8 runs/s"), (32, "c=32 runs/s")];

/// One API process and `workers` worker processes on a fresh database of `postgres`.
pub async fn run(postgres: &str, workers: usize, calls: u64) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let (_, mut env, dir) = fresh_database_on(Some(postgres)).await?;
    env.push(("TIMIX_KEY_RATE_LIMIT".into(), "100000000".into()));
    let api = start_as(&env, "api")?;
    let workers: Vec<Server> = (0..workers)
        .map(|_| start_as(&env, "worker"))
        .collect::<anyhow::Result<_>>()?;
    let org = bootstrap(&env)?;
    let http = reqwest::Client::new();
    let (target, arrivals, repeats) = counting_receiver().await?;
    let flow: Value = http
        .post(format!("{}/flows", api.base))
        .header("X-Api-Key", &org.key)
        .json(&json!({
            "name": "Inbound → HTTP",
            "trigger": {"type": "webhook"},
            "steps": [{"key": "send", "action": "http_request",
                       "input": {"method": "POST", "url": target, "body": {"n": "{{trigger.n}}"}}}]
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let url = format!(
        "{}{}",
        api.base.trim_end_matches("/api/integration/v1"),
        flow["trigger"]["webhookUrl"].as_str().unwrap_or_default()
    );
    let workflow = Workflow {
        http: &http,
        url: &url,
        arrivals: &arrivals,
    };
    // The API's meter also counts the database server's processes.
    let meters: Vec<CpuMeter> = std::iter::once(
        CpuMeter::process_tree(api.child.id()).with_postgres_database(&database_name(&env)),
    )
    .chain(workers.iter().map(|w| CpuMeter::process_tree(w.child.id())))
    .collect();
    let used = || {
        meters
            .iter()
            .map(CpuMeter::used)
            .fold(CpuUsed::default(), |sum, used| CpuUsed {
                system: sum.system + used.system,
                database_server: sum.database_server + used.database_server,
            })
    };
    let before = used();
    for (k, (connections, rate)) in (1u64..).zip(LOOPS) {
        let outcome = closed_loop(&workflow, 10_000_000 * k, calls, connections).await?;
        eprintln!("  scale-out, c={connections}: {outcome:?}");
        figures.insert(rate, outcome.runs_per_second);
    }
    let spent = used().since(before);
    let per_run = |cpu: Duration| ms(cpu) / (LOOPS.len() as u64 * calls) as f64;
    figures.insert("CPU per run (ms)", per_run(spent.system));
    figures.insert("server CPU per run (ms)", per_run(spent.database_server));
    figures.insert(
        "runs executed twice",
        repeats.load(Ordering::Relaxed) as f64,
    );
    drop(workers);
    drop(api);
    let _ = std::fs::remove_dir_all(dir);
    Ok(figures)
}
