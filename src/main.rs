//! The `timix` command line: serve, migrate, and the operator's commands.

mod config;
mod files;
mod operator;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand, ValueEnum};
use timix_engine::Db;
use timix_engine::automation::connections::Vault;
use timix_engine::automation::connectors::Registry;
use timix_engine::automation::manifest::Manifests;
use timix_engine::automation::targets::Targets;
use timix_engine::store::jobs::Queues;
use timix_triggers::executor::{RunLane, SharedBacklog};
use timix_triggers::workers::{self, WorkerContext};
use timix_web::client::ApiClient;
use timix_web::request_guard::RequestLimits;
use timix_web::{AppParts, AppState, GateOptions};
use tracing_subscriber::EnvFilter;

use crate::config::{GlobalArgs, LogFormat, Settings};
use crate::operator::{BootstrapArgs, ExportArgs, KeysCommand, ManifestsCommand, OrgCommand};

/// How often the operator's connectors folder is looked at for changes.
const CONNECTORS_DIR_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

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
    Bootstrap(BootstrapArgs),
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
    Export(ExportArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ServeRole {
    Api,
    Worker,
    All,
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
        Command::Serve { role } => serve(settings, role).await,
        Command::Migrate => {
            let db = open_database(&settings).await?;
            tracing::info!(backend = db.backend().name(), "Migrations applied.");
            db.close().await;
            Ok(())
        }
        Command::Bootstrap(args) => operator::bootstrap(open_database(&settings), args).await,
        Command::Keys { command } => operator::keys(open_database(&settings), command).await,
        Command::Org { command } => operator::org(open_database(&settings), command).await,
        Command::Manifests {
            command: ManifestsCommand::Check { dir },
        } => operator::check_manifests(dir.as_deref(), settings.connectors_dir.as_deref()),
        Command::Export(args) => operator::export(args),
    }
}

async fn serve(settings: Settings, role: ServeRole) -> anyhow::Result<()> {
    let db = open_database(&settings).await?;
    let queues = Queues::open(&settings.database_url)
        .await
        .context("cannot open the job queue")?;
    let manifests = Arc::new(built_in_manifests()?);
    if let Some(dir) = &settings.connectors_dir
        && !dir.is_dir()
    {
        anyhow::bail!("the connectors folder {} cannot be read", dir.display());
    }
    let connectors = Arc::new(Registry::new(
        manifests.clone(),
        settings.connectors_dir.clone(),
    ));
    tokio::spawn(connectors.clone().watch(CONNECTORS_DIR_CHECK));
    let vault = open_vault(&settings, &db).await?;
    // Bound before anything starts, so the OAuth2 redirect knows the port when none is given.
    let listener = match role {
        ServeRole::Worker => None,
        _ => Some(
            tokio::net::TcpListener::bind(&settings.bind)
                .await
                .with_context(|| format!("cannot listen on {}", settings.bind))?,
        ),
    };
    let public_url = match (&settings.public_url, &listener) {
        (Some(url), _) => url.clone(),
        (None, Some(listener)) => format!("http://{}", listener.local_addr()?),
        (None, None) => format!("http://{}", settings.bind),
    };
    // New runs started in this process are executed here at once when it runs workers.
    let runs_here = matches!(role, ServeRole::Worker | ServeRole::All);
    let lane = runs_here.then(|| {
        RunLane::new(
            settings.run_lease,
            workers::RUN_CONCURRENCY,
            settings.inbound_backlog,
        )
    });
    let state = AppState::build(AppParts {
        queues: Some(queues.clone()),
        gate: GateOptions {
            quota_override: settings.key_rate_limit,
            ..GateOptions::default()
        },
        quotas: settings.quotas,
        targets: Targets {
            allow_private: settings.allow_private_targets,
        },
        request_limits: RequestLimits {
            client_timeout: settings.client_timeout,
        },
        metrics_token: settings.metrics_token.clone(),
        public_url,
        trust_proxy: settings.trust_proxy,
        runs_per_minute: settings.runs_per_minute,
        run_lane: lane.as_ref().map(|(lane, _)| lane.clone()),
        // Without workers, inbound calls are paced by the runs waiting for the worker processes.
        shared_backlog: (!runs_here)
            .then(|| Arc::new(SharedBacklog::new(settings.inbound_backlog))),
        fanout_limit: settings.fanout_limit,
        mcp_oauth: timix_engine::access::mcp_oauth::Lifetimes {
            access_ms: settings.mcp_token_lifetime.as_millis() as i64,
            ..Default::default()
        },
        connectors: Some(connectors.clone()),
        ..AppParts::new(db.clone(), manifests, vault.clone())
    });
    let workers = lane.map(|(run_lane, run_lane_receiver)| {
        workers::start(WorkerContext {
            db: db.clone(),
            queues,
            manifests: state.manifests.clone(),
            connectors,
            public_url: state.public_url.clone(),
            vault,
            admission: state.admission.clone(),
            performer: state.performer.clone(),
            // Built from the finished state: steps on this instance go through its API.
            this_instance: Arc::new(ApiClient::new(state.clone())),
            run_lane,
            run_lane_receiver,
            settings: settings.workers(),
        })
    });
    if let Some(listener) = listener {
        let counters =
            workers::keep_request_counters(db.clone(), state.usage.clone(), state.limiter.clone());
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
        counters.abort();
    } else {
        tracing::info!(backend = db.backend().name(), "worker started");
        shutdown_signal().await;
    }
    if let Some(workers) = workers {
        workers.stop();
    }
    db.close().await;
    tracing::info!("Stopped after finishing in-flight requests.");
    Ok(())
}

/// The manifests built into the binary; invalid ones stop the start.
fn built_in_manifests() -> anyhow::Result<Manifests> {
    Manifests::built_in().map_err(|problems| {
        anyhow!(
            "the built-in manifests are invalid: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// The key credentials are sealed with (the operator's, or the data dir's), checked against
/// what the database holds; secrets an earlier version kept in plaintext are sealed with it.
async fn open_vault(settings: &Settings, db: &Db) -> anyhow::Result<Vault> {
    let vault = match &settings.secret_key {
        Some(key) => Vault::from_base64(key).context("TIMIX_SECRET_KEY")?,
        None => {
            files::secure(settings)?;
            Vault::load_or_create(&settings.data_dir)
                .context("cannot load the key credentials are sealed with")?
        }
    };
    timix_engine::automation::connections::check_vault(db, &vault).await?;
    seal_plaintext_secrets(db, &vault).await?;
    Ok(vault)
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
