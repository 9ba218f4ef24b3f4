//! Settings: a flag beats an environment variable, which beats the optional config file
//! (`--config`, `TIMIX_CONFIG`, or `./timix.toml` when present), which beats the default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde::Deserialize;

/// Flags shared by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Config file (TOML) with any of the flags' names with underscores (bind, data_dir,
    /// database_url, max_flows, log_format…).
    #[arg(long, env = "TIMIX_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "TIMIX_BIND", global = true)]
    pub bind: Option<String>,
    /// Folder for the SQLite database and generated keys [default: ./timix-data].
    #[arg(long, env = "TIMIX_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// sqlite://… or postgres://… [default: the SQLite file in the data dir].
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Let webhooks, hooks and connections reach loopback and private addresses.
    #[arg(long, env = "TIMIX_ALLOW_PRIVATE_TARGETS", global = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = parse_flag)]
    pub allow_private_targets: Option<bool>,
    /// Delays between webhook delivery attempts, e.g. `5s,5m,30m,2h`.
    #[arg(long, env = "TIMIX_WEBHOOK_RETRY_SCHEDULE", global = true)]
    pub webhook_retry_schedule: Option<String>,
    /// How long an Idempotency-Key is remembered, e.g. `24h` [default: 24h].
    #[arg(long, env = "TIMIX_IDEMPOTENCY_RETENTION", global = true)]
    pub idempotency_retention: Option<String>,
    /// The wait before a flow step's first retry; each next one doubles it [default: 2s].
    #[arg(long, env = "TIMIX_FLOW_RETRY_BASE", global = true)]
    pub flow_retry_base: Option<String>,
    /// How long a run, or a poll flow while polling, waits after its worker died before another
    /// process takes it over; a live worker extends a run's, also during a slow step
    /// [default: 60s].
    #[arg(long, env = "TIMIX_RUN_LEASE", global = true)]
    pub run_lease: Option<String>,
    /// Inbound webhook calls are refused (503 with Retry-After) while the oldest run waiting
    /// for this process's workers (with --role api: for any worker) has waited longer than
    /// this; 0 never refuses [default: 5s].
    #[arg(long, env = "TIMIX_INBOUND_BACKLOG", global = true)]
    pub inbound_backlog: Option<String>,
    /// Where users reach this service (`https://timix.example.com`), for OAuth2 redirects
    /// [default: http:// and the bind address].
    #[arg(long, env = "TIMIX_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// A folder of connector documents (`*.yaml`, or `<key>/connector.yaml`) every
    /// organization of this instance may use; read again whenever a file in it changes.
    #[arg(long, env = "TIMIX_CONNECTORS_DIR", global = true)]
    pub connectors_dir: Option<PathBuf>,
    /// The key connections' credentials are sealed with: 32 bytes in base64. Every process of
    /// one database needs the same [default: generated into `<data dir>/secret.key`].
    #[arg(long, env = "TIMIX_SECRET_KEY", global = true, hide_env_values = true)]
    pub secret_key: Option<String>,
    /// How long finished runs are kept (with their trigger records and step outputs) before
    /// they are deleted [default: 30d].
    #[arg(long, env = "TIMIX_RUN_RETENTION", global = true)]
    pub run_retention: Option<String>,
    /// A reverse proxy in front sets X-Forwarded-For: take the client's address from it (for
    /// login throttling).
    #[arg(long, env = "TIMIX_TRUST_PROXY", global = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = parse_flag)]
    pub trust_proxy: Option<bool>,
    /// How long a client may take to send a request's headers, and again its body, before it
    /// is cut off [default: 30s].
    #[arg(long, env = "TIMIX_CLIENT_TIMEOUT", global = true)]
    pub client_timeout: Option<String>,
    /// The most flows one organization may have [default: 200].
    #[arg(long, env = "TIMIX_MAX_FLOWS", global = true)]
    pub max_flows: Option<u32>,
    /// The most webhooks one organization may have [default: 100].
    #[arg(long, env = "TIMIX_MAX_WEBHOOKS", global = true)]
    pub max_webhooks: Option<u32>,
    /// The most REST hooks one organization may have [default: 500].
    #[arg(long, env = "TIMIX_MAX_HOOKS", global = true)]
    pub max_hooks: Option<u32>,
    /// Requests per minute every key may make, replacing its plan's limit (an on-premises
    /// install with no plans to enforce, a load test) [default: the plan's].
    #[arg(long, env = "TIMIX_KEY_RATE_LIMIT", global = true)]
    pub key_rate_limit: Option<u32>,
    /// Runs every organization may start per minute, replacing its plan's budget; 0 lifts it.
    /// Runs beyond it wait in the queue [default: the plan's: 100, 500, 2000, 10000].
    #[arg(long, env = "TIMIX_RUNS_PER_MINUTE", global = true)]
    pub runs_per_minute: Option<u32>,
    /// The most runs one chain of flows (flows started by other flows' changes) may start from
    /// its root event or run [default: 100].
    #[arg(long, env = "TIMIX_FANOUT_LIMIT", global = true)]
    pub fanout_limit: Option<u32>,
    /// How long an access token of an MCP client (OAuth) serves before the client refreshes it
    /// [default: 1h].
    #[arg(long, env = "TIMIX_MCP_TOKEN_LIFETIME", global = true)]
    pub mcp_token_lifetime: Option<String>,
    /// The bearer token `/metrics` asks for; without one `/metrics` is not served.
    #[arg(
        long,
        env = "TIMIX_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Log filter, e.g. `info` or `timix_web=debug` [default: info].
    #[arg(long, env = "TIMIX_LOG", global = true)]
    pub log: Option<String>,
    /// `text` or `json` [default: text].
    #[arg(long, env = "TIMIX_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
}

fn parse_flag(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected 1 or 0, got {other:?}")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    allow_private_targets: Option<bool>,
    webhook_retry_schedule: Option<String>,
    idempotency_retention: Option<String>,
    flow_retry_base: Option<String>,
    run_lease: Option<String>,
    inbound_backlog: Option<String>,
    public_url: Option<String>,
    connectors_dir: Option<PathBuf>,
    secret_key: Option<String>,
    trust_proxy: Option<bool>,
    run_retention: Option<String>,
    client_timeout: Option<String>,
    max_flows: Option<u32>,
    max_webhooks: Option<u32>,
    max_hooks: Option<u32>,
    key_rate_limit: Option<u32>,
    runs_per_minute: Option<u32>,
    fanout_limit: Option<u32>,
    mcp_token_lifetime: Option<String>,
    metrics_token: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved settings of this process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub allow_private_targets: bool,
    pub webhook_retry_schedule: Vec<Duration>,
    pub idempotency_retention: Duration,
    pub flow_retry_base: Duration,
    pub run_lease: Duration,
    /// The oldest wait of a run before inbound calls are refused; `None`: never.
    pub inbound_backlog: Option<Duration>,
    /// None: http:// and the address listened on.
    pub public_url: Option<String>,
    pub connectors_dir: Option<PathBuf>,
    pub secret_key: Option<String>,
    pub trust_proxy: bool,
    pub run_retention: Duration,
    pub client_timeout: Duration,
    pub quotas: timix_engine::automation::quotas::Quotas,
    pub key_rate_limit: Option<u32>,
    /// None: each plan's budget; `Some(0)`: none.
    pub runs_per_minute: Option<u32>,
    pub fanout_limit: i64,
    pub mcp_token_lifetime: Duration,
    pub metrics_token: Option<String>,
    pub log: String,
    pub log_format: LogFormat,
}

pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,14h,20h,24h";

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None if Path::new("timix.toml").exists() => read_file(Path::new("timix.toml"))?,
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./timix-data"));
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("timix.db").display()));
        if timix_engine::Backend::from_url(&database_url).is_none() {
            bail!("DATABASE_URL must start with sqlite:// or postgres://");
        }
        let log_format = match args.log_format.clone().or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("TIMIX_LOG_FORMAT must be text or json, not {other:?}"),
        };
        let schedule = args
            .webhook_retry_schedule
            .clone()
            .or(file.webhook_retry_schedule)
            .unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE.to_owned());
        let retention = args
            .idempotency_retention
            .clone()
            .or(file.idempotency_retention)
            .unwrap_or_else(|| "24h".to_owned());
        let idempotency_retention = match parse_schedule(&retention)
            .context("TIMIX_IDEMPOTENCY_RETENTION")?
            .as_slice()
        {
            [one] => *one,
            _ => bail!("TIMIX_IDEMPOTENCY_RETENTION must be one duration such as 24h"),
        };
        let retry_base = args
            .flow_retry_base
            .clone()
            .or(file.flow_retry_base)
            .unwrap_or_else(|| "2s".to_owned());
        let flow_retry_base = match parse_schedule(&retry_base)
            .context("TIMIX_FLOW_RETRY_BASE")?
            .as_slice()
        {
            [one] => *one,
            _ => bail!("TIMIX_FLOW_RETRY_BASE must be one duration such as 2s"),
        };
        let lease = args
            .run_lease
            .clone()
            .or(file.run_lease)
            .unwrap_or_else(|| "60s".to_owned());
        let run_lease = match parse_schedule(&lease)
            .context("TIMIX_RUN_LEASE")?
            .as_slice()
        {
            [one] => *one,
            _ => bail!("TIMIX_RUN_LEASE must be one duration such as 60s"),
        };
        let backlog = args
            .inbound_backlog
            .clone()
            .or(file.inbound_backlog)
            .unwrap_or_else(|| "5s".to_owned());
        let inbound_backlog = match parse_schedule(&backlog)
            .context("TIMIX_INBOUND_BACKLOG")?
            .as_slice()
        {
            [one] => Some(*one).filter(|d| !d.is_zero()),
            _ => bail!("TIMIX_INBOUND_BACKLOG must be one duration such as 5s, or 0"),
        };
        let timeout = args
            .client_timeout
            .clone()
            .or(file.client_timeout)
            .unwrap_or_else(|| "30s".to_owned());
        let client_timeout = match parse_schedule(&timeout)
            .context("TIMIX_CLIENT_TIMEOUT")?
            .as_slice()
        {
            [one] if !one.is_zero() => *one,
            _ => bail!("TIMIX_CLIENT_TIMEOUT must be one duration such as 30s"),
        };
        let defaults = timix_engine::automation::quotas::Quotas::default();
        let quotas = timix_engine::automation::quotas::Quotas {
            flows: args.max_flows.or(file.max_flows).unwrap_or(defaults.flows),
            webhooks: args
                .max_webhooks
                .or(file.max_webhooks)
                .unwrap_or(defaults.webhooks),
            hooks: args.max_hooks.or(file.max_hooks).unwrap_or(defaults.hooks),
        };
        let retention = args
            .run_retention
            .clone()
            .or(file.run_retention)
            .unwrap_or_else(|| "30d".to_owned());
        let run_retention = match parse_schedule(&retention)
            .context("TIMIX_RUN_RETENTION")?
            .as_slice()
        {
            [one] if !one.is_zero() => *one,
            _ => bail!("TIMIX_RUN_RETENTION must be one duration such as 30d"),
        };
        let lifetime = args
            .mcp_token_lifetime
            .clone()
            .or(file.mcp_token_lifetime)
            .unwrap_or_else(|| "1h".to_owned());
        let mcp_token_lifetime = match parse_schedule(&lifetime)
            .context("TIMIX_MCP_TOKEN_LIFETIME")?
            .as_slice()
        {
            [one] if one.as_secs() >= 1 => *one,
            _ => bail!(
                "TIMIX_MCP_TOKEN_LIFETIME must be one duration of a second or more, such as 1h"
            ),
        };
        let bind = args
            .bind
            .clone()
            .or(file.bind)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let public_url = args.public_url.clone().or(file.public_url);
        if let Some(url) = &public_url
            && !url.starts_with("http://")
            && !url.starts_with("https://")
        {
            bail!("TIMIX_PUBLIC_URL must be an http(s) URL, not {url:?}");
        }
        Ok(Settings {
            flow_retry_base,
            run_lease,
            inbound_backlog,
            bind,
            public_url,
            connectors_dir: args.connectors_dir.clone().or(file.connectors_dir),
            secret_key: args.secret_key.clone().or(file.secret_key),
            trust_proxy: args.trust_proxy.or(file.trust_proxy).unwrap_or(false),
            run_retention,
            client_timeout,
            quotas,
            key_rate_limit: args
                .key_rate_limit
                .or(file.key_rate_limit)
                .filter(|n| *n > 0),
            runs_per_minute: args.runs_per_minute.or(file.runs_per_minute),
            fanout_limit: args
                .fanout_limit
                .or(file.fanout_limit)
                .map_or(timix_triggers::dispatcher::DEFAULT_FANOUT_LIMIT, i64::from),
            mcp_token_lifetime,
            metrics_token: args
                .metrics_token
                .clone()
                .or(file.metrics_token)
                .filter(|t| !t.is_empty()),
            data_dir,
            database_url,
            allow_private_targets: args
                .allow_private_targets
                .or(file.allow_private_targets)
                .unwrap_or(false),
            webhook_retry_schedule: parse_schedule(&schedule)
                .context("TIMIX_WEBHOOK_RETRY_SCHEDULE")?,
            idempotency_retention,
            log: args
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".to_owned()),
            log_format,
        })
    }

    /// Creates the data directory and checks that it can be written.
    pub fn prepare_data_dir(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create data dir {}", self.data_dir.display()))?;
        let probe = self.data_dir.join(".write-test");
        std::fs::write(&probe, b"")
            .with_context(|| format!("data dir {} is not writable", self.data_dir.display()))?;
        let _ = std::fs::remove_file(probe);
        Ok(())
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow!("config file {} is invalid: {}", path.display(), e.message()))
}

/// Parses `5s,5m,2h` into durations (the unit names are those of a retry schedule).
pub fn parse_schedule(text: &str) -> anyhow::Result<Vec<Duration>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let split = item
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(item.len());
            let (number, unit) = item.split_at(split);
            let n: u64 = number.parse().map_err(|_| {
                anyhow!("webhook retry schedule: {item:?} is not like 5s, 5m or 2h")
            })?;
            let seconds = match unit {
                "ms" => return Ok(Duration::from_millis(n)),
                "s" | "" => n,
                "m" => n * 60,
                "h" => n * 3600,
                "d" => n * 86400,
                _ => {
                    bail!("webhook retry schedule: unknown unit in {item:?} (use ms, s, m, h or d)")
                }
            };
            Ok(Duration::from_secs(seconds))
        })
        .collect()
}

impl Settings {
    /// What the background workers obey.
    pub fn workers(&self) -> timix_triggers::workers::WorkerSettings {
        timix_triggers::workers::WorkerSettings {
            database_url: self.database_url.clone(),
            allow_private_targets: self.allow_private_targets,
            webhook_retry_schedule: self.webhook_retry_schedule.clone(),
            flow_retry_base: self.flow_retry_base,
            run_lease: self.run_lease,
            fanout_limit: self.fanout_limit,
            idempotency_retention: self.idempotency_retention,
            run_retention: self.run_retention,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_with_units() {
        let s = parse_schedule("5s, 5m,2h,1d,250ms").unwrap();
        assert_eq!(
            s,
            vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(7200),
                Duration::from_secs(86400),
                Duration::from_millis(250)
            ]
        );
        assert!(parse_schedule("5x").is_err());
        assert!(parse_schedule("soon").is_err());
    }
}
