//! The `timix` command line: serve, migrate, and the operator's commands.

mod config;
mod files;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand, ValueEnum};
use timix_connectors::apps;
use timix_connectors::outbound::Outbound;
use timix_connectors::webhooks::{
    AttemptLog, Deliverer, DeliveryJob, FastAttempt, serve_fast_lane, sweep,
};
use timix_engine::Db;
use timix_engine::access::bootstrap::{BootstrapInput, bootstrap};
use timix_engine::access::organizations::{self, BillingState, Plan};
use timix_engine::automation::connections::Vault;
use timix_engine::automation::manifest::{ManifestProblem, Manifests};
use timix_engine::automation::run_admission::RunAdmission;
use timix_engine::store::jobs::Queues;
use timix_triggers::actions::Runner;
use timix_triggers::dispatcher::Dispatcher;
use timix_triggers::flow_runner::{FlowRunner, Handoff, RunJob, RunLane, serve_lane, sweep_runs};
use timix_triggers::poller::Poller;
use timix_web::instance::InProcess;
use tracing_subscriber::EnvFilter;

use crate::config::{GlobalArgs, LogFormat, Settings};

#[derive(Parser)]
#[command(
    name = "timix",
    version,
    about = "Self-hosted integration platform for time tracking and billing"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Which parts this process runs: `api` (HTTP), `worker` (background work) or both.
        #[arg(long, value_enum, default_value = "all")]
        role: ServeRole,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create an organization with an owner and an API key; prints one line of JSON.
    Bootstrap {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        plan: PlanArg,
        /// Password for the owner's web login.
        #[arg(long)]
        password: Option<String>,
        /// Default currency of the organization (ISO 4217).
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// IANA time zone of the organization.
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
    /// API keys (operator commands).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Organizations (operator commands).
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Action and trigger manifests.
    Manifests {
        #[command(subcommand)]
        command: ManifestsCommand,
    },
    /// Write the Zapier, Make or Workato app, generated from the manifests.
    Export {
        #[arg(value_enum)]
        platform: ExportPlatform,
        /// The folder to write the app into (created if needed).
        #[arg(long)]
        out: std::path::PathBuf,
        /// A folder laid out like `manifests/`; the built-in manifests if absent.
        #[arg(long)]
        manifests: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportPlatform {
    Zapier,
    Make,
    Workato,
}

#[derive(Subcommand)]
enum ManifestsCommand {
    /// Check manifests against the meta-schema: every problem with its file and path; exit 1 on any.
    Check {
        /// A folder laid out like `manifests/` (`actions/`, `triggers/`); the built-in ones if absent.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for any user; prints {"id", "apiKey"}.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "operator")]
        name: String,
        /// RFC 3339 instant after which the key stops working.
        #[arg(long)]
        expires_at: Option<String>,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Change an organization's plan or billing state; prints the organization.
    Update {
        org_id: String,
        #[arg(long, value_enum)]
        plan: Option<PlanArg>,
        #[arg(long, value_enum)]
        billing_state: Option<BillingStateArg>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ServeRole {
    Api,
    Worker,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanArg {
    Free,
    Starter,
    Professional,
    Business,
}

impl From<PlanArg> for Plan {
    fn from(p: PlanArg) -> Self {
        match p {
            PlanArg::Free => Plan::Free,
            PlanArg::Starter => Plan::Starter,
            PlanArg::Professional => Plan::Professional,
            PlanArg::Business => Plan::Business,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum BillingStateArg {
    Active,
    PastDue,
    ReadOnly,
}

impl From<BillingStateArg> for BillingState {
    fn from(s: BillingStateArg) -> Self {
        match s {
            BillingStateArg::Active => BillingState::Active,
            BillingStateArg::PastDue => BillingState::PastDue,
            BillingStateArg::ReadOnly => BillingState::ReadOnly,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::resolve(&cli.global) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    init_logging(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(anyhow!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// `timix manifests check`: a summary on success, every problem on failure.
fn load_manifests(dir: Option<&std::path::Path>) -> Result<Manifests, Vec<ManifestProblem>> {
    match dir {
        Some(dir) => Manifests::from_dir(dir),
        None => Manifests::built_in(),
    }
}

/// `timix export zapier|make|workato --out DIR`.
fn export(
    platform: ExportPlatform,
    out: &std::path::Path,
    dir: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let manifests = load_manifests(dir).map_err(|problems| {
        anyhow!(
            "the manifests are invalid: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let version = env!("CARGO_PKG_VERSION");
    let (name, written) = match platform {
        ExportPlatform::Zapier => ("Zapier", apps::zapier::write(&manifests, version, out)),
        ExportPlatform::Make => ("Make", apps::make::write(&manifests, version, out)),
        ExportPlatform::Workato => ("Workato", apps::workato::write(&manifests, version, out)),
    };
    written?;
    println!(
        "{name} app with {} triggers and {} actions written to {}",
        manifests.triggers.len(),
        manifests.actions.len(),
        out.display()
    );
    Ok(())
}

fn check_manifests(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    match load_manifests(dir) {
        Ok(m) => {
            println!(
                "{} actions and {} triggers: all valid",
                m.actions.len(),
                m.triggers.len()
            );
            Ok(())
        }
        Err(problems) => {
            for problem in &problems {
                println!("{problem}");
            }
            Err(anyhow!("{} problem(s) in the manifests", problems.len()))
        }
    }
}

/// One clear line on stderr, non-zero exit.
fn fail(error: anyhow::Error) -> ExitCode {
    let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
    eprintln!("timix: {}", chain.join(": "));
    ExitCode::FAILURE
}

fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    if settings.database_url.starts_with("sqlite:") {
        files::secure(settings)?;
        settings.prepare_data_dir()?;
    }
    let db = Db::connect(&settings.database_url)
        .await
        .context("cannot open the database")?;
    db.migrate().await.context("cannot migrate the database")?;
    Ok(db)
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Manifests {
            command: ManifestsCommand::Check { dir },
        } => check_manifests(dir.as_deref()),
        Command::Export {
            platform,
            out,
            manifests,
        } => export(platform, &out, manifests.as_deref()),
        Command::Serve { role } => serve(settings, role).await,
        Command::Migrate => {
            let db = open_database(&settings).await?;
            tracing::info!(backend = db.backend().name(), "Migrations applied.");
            db.close().await;
            Ok(())
        }
        Command::Bootstrap {
            org,
            email,
            plan,
            password,
            currency,
            timezone,
        } => {
            let db = open_database(&settings).await?;
            let done = bootstrap(
                &db,
                BootstrapInput {
                    org_name: &org,
                    email: &email,
                    plan: plan.into(),
                    password: password.as_deref(),
                    currency: &currency,
                    timezone: &timezone,
                },
            )
            .await
            .map_err(describe)?;
            println!("{}", serde_json::to_string(&done)?);
            db.close().await;
            Ok(())
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    user,
                    name,
                    expires_at,
                },
        } => {
            let expires_at = expires_at
                .map(|t| {
                    timix_engine::store::clock::parse_instant(&t)
                        .ok_or_else(|| anyhow!("--expires-at must be RFC 3339"))
                })
                .transpose()?;
            let db = open_database(&settings).await?;
            let created =
                timix_engine::access::api_keys::create_for_user(&db, &user, &name, expires_at)
                    .await
                    .map_err(describe)?;
            println!(
                "{}",
                serde_json::json!({"id": created.api_key.id, "apiKey": created.key})
            );
            db.close().await;
            Ok(())
        }
        Command::Org {
            command:
                OrgCommand::Update {
                    org_id,
                    plan,
                    billing_state,
                },
        } => {
            let db = open_database(&settings).await?;
            let org = organizations::operator_update(
                &db,
                &org_id,
                plan.map(Into::into),
                billing_state.map(Into::into),
            )
            .await
            .map_err(describe)?;
            println!("{}", serde_json::to_string(&org)?);
            db.close().await;
            Ok(())
        }
    }
}

/// Engine errors for a terminal: validation details spelled out.
fn describe(error: timix_engine::Error) -> anyhow::Error {
    match error {
        timix_engine::Error::Validation(details) => anyhow!(
            "{}",
            details
                .iter()
                .map(|d| format!("{}: {}", d.field, d.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow!(other),
    }
}

async fn serve(settings: Settings, role: ServeRole) -> anyhow::Result<()> {
    let db = open_database(&settings).await?;
    let queues = Queues::open(&settings.database_url)
        .await
        .context("cannot open the job queue")?;
    let manifests = Manifests::built_in().map_err(|problems| {
        anyhow!(
            "the built-in manifests are invalid: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let vault = match &settings.secret_key {
        Some(key) => Vault::from_base64(key).context("TIMIX_SECRET_KEY")?,
        None => {
            files::secure(&settings)?;
            Vault::load_or_create(&settings.data_dir)
                .context("cannot load the key credentials are sealed with")?
        }
    };
    timix_engine::automation::connections::check_vault(&db, &vault).await?;
    seal_plaintext_secrets(&db, &vault).await?;
    let mut state = timix_web::AppState::new(
        db.clone(),
        Some(queues.clone()),
        Arc::new(manifests),
        vault.clone(),
    );
    // Bound before anything starts, so the OAuth2 redirect knows the port when none is given.
    let listener = match role {
        ServeRole::Worker => None,
        _ => Some(
            tokio::net::TcpListener::bind(&settings.bind)
                .await
                .with_context(|| format!("cannot listen on {}", settings.bind))?,
        ),
    };
    state.trust_proxy = settings.trust_proxy;
    // Before the in-process API below takes its copy of the state.
    state.quotas = settings.quotas;
    state.targets = timix_engine::automation::targets::Targets {
        allow_private: settings.allow_private_targets,
    };
    state.gate.quota_override = settings.key_rate_limit;
    state.admission = Arc::new(RunAdmission::new(db.clone(), settings.runs_per_minute));
    state.request_limits = timix_web::guard::RequestLimits {
        client_timeout: settings.client_timeout,
    };
    state.metrics = Arc::new(timix_web::metrics::Metrics::new(
        settings.metrics_token.as_deref(),
    ));
    state.public_url = match (&settings.public_url, &listener) {
        (Some(url), _) => url.clone(),
        (None, Some(listener)) => format!("http://{}", listener.local_addr()?),
        (None, None) => format!("http://{}", settings.bind),
    };
    let actions = Arc::new(Runner::new(
        Box::new(InProcess::new(state.clone())),
        Outbound::new(settings.allow_private_targets, Duration::from_secs(30)),
        db.clone(),
        vault,
        state.oauth_redirect(),
    ));
    let _ = state.actions.set(actions.clone());
    let runs_here = matches!(role, ServeRole::Worker | ServeRole::All);
    // New runs started in this process are executed here at once when it runs workers.
    let (run_lane, run_lane_rx) = RunLane::new(settings.run_lease, RUN_CONCURRENCY);
    if runs_here {
        state.run_lane = Some(run_lane.clone());
    }
    let mut background = Vec::new();
    if matches!(role, ServeRole::Worker | ServeRole::All) {
        background.push(tokio::spawn(purge_expired(
            db.clone(),
            settings.idempotency_retention,
            settings.run_retention,
        )));
        background.extend(start_delivery(&settings, &state, &queues, run_lane));
        background.extend(start_flows(
            &settings,
            &state,
            &queues,
            run_lane_rx,
            actions,
        ));
    }
    if let Some(listener) = listener {
        background.push(tokio::spawn(keep_request_counters(state.clone())));
        let address = listener.local_addr()?;
        let app = timix_web::app(state.clone());
        tracing::info!(
            backend = db.backend().name(),
            allow_private_targets = settings.allow_private_targets,
            webhook_retry_schedule = ?settings.webhook_retry_schedule,
            "listening on {address}"
        );
        timix_web::serve::serve(listener, app, settings.client_timeout, shutdown_signal()).await;
        if let Err(error) = state.usage.flush(&db).await {
            tracing::warn!(%error, "Could not save the last request counts.");
        }
    } else {
        tracing::info!(backend = db.backend().name(), "worker started");
        shutdown_signal().await;
    }
    for task in background {
        task.abort();
    }
    db.close().await;
    tracing::info!("Stopped after finishing in-flight requests.");
    Ok(())
}

/// Seals the webhook signing secrets and inbound webhook secrets an earlier version kept in
/// plaintext (once: sealed ones are left alone).
async fn seal_plaintext_secrets(db: &Db, vault: &Vault) -> anyhow::Result<()> {
    let subscriptions = timix_engine::automation::webhooks::seal_plaintext_secrets(db, vault)
        .await
        .context("cannot seal the webhooks' secrets")?;
    let flows = timix_engine::automation::flows::seal_plaintext_secrets(db, vault)
        .await
        .context("cannot seal the inbound webhooks' secrets")?;
    if subscriptions + flows > 0 {
        tracing::info!(
            subscriptions,
            flows,
            "Sealed webhook secrets that were stored in plaintext."
        );
    }
    Ok(())
}

/// Flow runs: the workers that execute them and the sweeper that queues due retries and runs a
/// crashed process left behind. (Event-triggered runs are started by the dispatcher.)
fn start_flows(
    settings: &Settings,
    state: &timix_web::AppState,
    queues: &Queues,
    lane: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
    actions: Arc<Runner>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let runner = Arc::new(FlowRunner {
        db: state.db.clone(),
        manifests: state.manifests.clone(),
        runner: actions,
        vault: state.vault.clone(),
        retry_base: settings.flow_retry_base,
        lease: settings.run_lease,
        admission: state.admission.clone(),
    });
    let poller = Arc::new(Poller {
        runs: runner.clone(),
        lane: state.run_lane.clone(),
        queues: Some(queues.clone()),
        lease: settings.run_lease,
    });
    let runner_for_sweeps = runner.clone();
    let runner_for_schedules = runner.clone();
    let runner_for_lane = runner.clone();
    let workers = {
        let queues = queues.clone();
        async move {
            for round in 0u64.. {
                let name = format!("runs-{}-{round}", std::process::id());
                match queues
                    .work::<RunJob, _>(&name, runner.clone(), RUN_CONCURRENCY)
                    .await
                {
                    Ok(()) => tracing::warn!("The run worker stopped; starting it again."),
                    Err(error) => {
                        tracing::error!(%error, "The run worker failed; starting it again.")
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let sweeper = sweep_runs(
        runner_for_sweeps,
        Duration::from_millis(100),
        RUN_CONCURRENCY,
    );
    let scheduler = timix_triggers::scheduler::run(runner_for_schedules);
    let polls = timix_triggers::poller::run(poller, Duration::from_millis(250), POLL_CONCURRENCY);
    // Every process that runs workers has a lane (set up before the workers start).
    let lane_handle = state
        .run_lane
        .clone()
        .unwrap_or_else(|| RunLane::new(settings.run_lease, RUN_CONCURRENCY).0);
    let lane = serve_lane(runner_for_lane, lane_handle, lane, RUN_CONCURRENCY);
    vec![
        tokio::spawn(lane),
        tokio::spawn(workers),
        tokio::spawn(sweeper),
        tokio::spawn(scheduler),
        tokio::spawn(polls),
    ]
}

/// Webhook delivery: the dispatcher, the workers that send, and the sweeper that requeues what a
/// crash left behind.
fn start_delivery(
    settings: &Settings,
    state: &timix_web::AppState,
    queues: &Queues,
    run_lane: RunLane,
) -> Vec<tokio::task::JoinHandle<()>> {
    let db = &state.db;
    let mut dispatcher = Dispatcher::new(db.clone(), queues.clone(), &settings.database_url);
    dispatcher.run_lane = Some(run_lane);
    dispatcher.admission = Some(state.admission.clone());
    dispatcher.fanout_limit = settings.fanout_limit;
    let (lane, fast) = tokio::sync::mpsc::unbounded_channel::<FastAttempt>();
    dispatcher.fast_lane = Some(lane.clone());
    let deliverer = Arc::new(Deliverer {
        db: db.clone(),
        queues: queues.clone(),
        outbound: Outbound::new(settings.allow_private_targets, Duration::from_secs(15)),
        vault: state.vault.clone(),
        schedule: settings.webhook_retry_schedule.clone(),
        log: AttemptLog::start(db.clone()),
    });
    let workers = {
        let queues = queues.clone();
        let deliverer = deliverer.clone();
        async move {
            // A worker that stops (its database was unreachable, say) is started again.
            for run in 0u64.. {
                let name = format!("deliveries-{}-{run}", std::process::id());
                match queues
                    .work::<DeliveryJob, _>(&name, deliverer.clone(), DELIVERY_CONCURRENCY)
                    .await
                {
                    Ok(()) => tracing::warn!("The delivery worker stopped; starting it again."),
                    Err(error) => {
                        tracing::error!(%error, "The delivery worker failed; starting it again.")
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    // Due retries and stalled deliveries are queued (durably) and also tried at once here.
    let sweeper = sweep::run(db.clone(), queues.clone(), lane);
    let fast_lane = serve_fast_lane(deliverer, fast, DELIVERY_CONCURRENCY);
    vec![
        tokio::spawn(dispatcher.run()),
        tokio::spawn(workers),
        tokio::spawn(sweeper),
        tokio::spawn(fast_lane),
    ]
}

/// Deliveries in flight at once, per process.
const DELIVERY_CONCURRENCY: usize = 64;
/// Flow runs one worker performs at a time.
const RUN_CONCURRENCY: usize = 32;
/// Poll flows read at once by one process.
const POLL_CONCURRENCY: usize = 16;

/// Writes request counts every few seconds and forgets idle rate-limit state every minute.
async fn keep_request_counters(state: timix_web::AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        ticks += 1;
        if let Err(error) = state.usage.flush(&state.db).await {
            tracing::warn!(%error, "Could not save request counts; will retry.");
        }
        if ticks.is_multiple_of(12) {
            state.limiter.forget_idle();
        }
    }
}

/// Forgets idempotency keys past their retention, tombstones past the sync window, finished
/// runs past theirs, seen items of old poll triggers, and expired web sessions, invitations and
/// failed logins.
async fn purge_expired(db: Db, idempotency_retention: Duration, run_retention: Duration) {
    let every =
        (idempotency_retention / 4).clamp(Duration::from_millis(250), Duration::from_secs(600));
    let mut tick = tokio::time::interval(every);
    let mut last_tombstone_purge: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        match timix_engine::access::idempotency::purge(
            &db,
            idempotency_retention.as_millis() as i64,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "Purged expired idempotency keys."),
            Err(error) => tracing::warn!(%error, "Could not purge idempotency keys."),
        }
        if last_tombstone_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_tombstone_purge = Some(std::time::Instant::now());
            let tables = [
                "time_entries",
                "invoices",
                "subtasks",
                "tasks",
                "projects",
                "customers",
                "holiday_profiles",
            ];
            match timix_engine::store::list::purge_tombstones(&db, &tables).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "Purged expired tombstones."),
                Err(error) => tracing::warn!(%error, "Could not purge tombstones."),
            }
            let retention = run_retention.as_millis() as i64;
            match timix_engine::automation::runs::purge_finished(&db, retention, 100).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "Deleted finished runs past their retention."),
                Err(error) => tracing::warn!(%error, "Could not delete old runs."),
            }
            match timix_engine::automation::polls::purge_stale_seen(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "Forgot seen items of old poll triggers."),
                Err(error) => tracing::warn!(%error, "Could not forget old seen items."),
            }
            match timix_engine::access::web_sessions::purge_expired(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "Purged expired sessions and invitations."),
                Err(error) => tracing::warn!(%error, "Could not purge expired sessions."),
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("Shutting down: draining in-flight requests.");
}
