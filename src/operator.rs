//! The operator's commands: bootstrap, keys, organizations, manifests and app exports.

use anyhow::anyhow;
use clap::{Args, Subcommand, ValueEnum};
use timix_connectors::apps;
use timix_engine::Db;
use timix_engine::access::bootstrap::{BootstrapInput, bootstrap as create_organization};
use timix_engine::access::organizations::{self, BillingState, Plan};
use timix_engine::automation::connectors::Registry;
use timix_engine::automation::manifest::{ManifestProblem, Manifests};

/// `timix bootstrap`.
#[derive(Args)]
pub struct BootstrapArgs {
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
}

/// `timix export`.
#[derive(Args)]
pub struct ExportArgs {
    #[arg(value_enum)]
    platform: ExportPlatform,
    /// The folder to write the app into (created if needed).
    #[arg(long)]
    out: std::path::PathBuf,
    /// A folder laid out like `manifests/connectors/timix/`; the built-in manifests if absent.
    #[arg(long)]
    manifests: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportPlatform {
    Zapier,
    Make,
    Workato,
}

#[derive(Subcommand)]
pub enum ManifestsCommand {
    /// Check manifests and connectors against the meta-schema: every problem with its file and
    /// path; exit 1 on any.
    Check {
        /// A folder laid out like `manifests/connectors/timix/` (`actions/`, `triggers/`); the
        /// built-in ones if absent. The catalogue and `--connectors-dir` are checked too.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
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
pub enum OrgCommand {
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
pub enum PlanArg {
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
pub enum BillingStateArg {
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

/// `timix bootstrap`: an organization with its owner and an API key, as one line of JSON.
pub async fn bootstrap(
    db: impl Future<Output = anyhow::Result<Db>>,
    args: BootstrapArgs,
) -> anyhow::Result<()> {
    let db = db.await?;
    let done = create_organization(
        &db,
        BootstrapInput {
            org_name: &args.org,
            email: &args.email,
            plan: args.plan.into(),
            password: args.password.as_deref(),
            currency: &args.currency,
            timezone: &args.timezone,
        },
    )
    .await;
    db.close().await;
    println!("{}", serde_json::to_string(&done.map_err(describe)?)?);
    Ok(())
}

/// `timix keys create`. The database (`db`, opened on first use) is not touched when the
/// arguments are wrong.
pub async fn keys(
    db: impl Future<Output = anyhow::Result<Db>>,
    command: KeysCommand,
) -> anyhow::Result<()> {
    let KeysCommand::Create {
        user,
        name,
        expires_at,
    } = command;
    let expires_at = expires_at
        .map(|t| {
            timix_engine::store::clock::parse_instant(&t)
                .ok_or_else(|| anyhow!("--expires-at must be RFC 3339"))
        })
        .transpose()?;
    let db = db.await?;
    let created = timix_engine::access::api_keys::create_for_user(&db, &user, &name, expires_at)
        .await
        .map_err(describe);
    db.close().await;
    let created = created?;
    println!(
        "{}",
        serde_json::json!({"id": created.api_key.id, "apiKey": created.key})
    );
    Ok(())
}

/// `timix org update`.
pub async fn org(
    db: impl Future<Output = anyhow::Result<Db>>,
    command: OrgCommand,
) -> anyhow::Result<()> {
    let db = db.await?;
    let OrgCommand::Update {
        org_id,
        plan,
        billing_state,
    } = command;
    let org = organizations::operator_update(
        &db,
        &org_id,
        plan.map(Into::into),
        billing_state.map(Into::into),
    )
    .await;
    db.close().await;
    println!("{}", serde_json::to_string(&org.map_err(describe)?)?);
    Ok(())
}

/// The manifests in `dir`, or the built-in ones.
fn load_manifests(dir: Option<&std::path::Path>) -> Result<Manifests, Vec<ManifestProblem>> {
    match dir {
        Some(dir) => Manifests::from_dir(dir),
        None => Manifests::built_in(),
    }
}

/// `timix export zapier|make|workato --out DIR`.
pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let ExportArgs {
        platform,
        out,
        manifests: dir,
    } = args;
    let out = out.as_path();
    let manifests = load_manifests(dir.as_deref()).map_err(|problems| {
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

/// `timix manifests check`: timix's manifests (or a folder of them), the connector catalogue
/// and the operator's connectors folder, if one is set; a summary on success, every problem
/// with its file and path on failure.
pub fn check_manifests(
    dir: Option<&std::path::Path>,
    connectors_dir: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let manifests = match load_manifests(dir) {
        Ok(m) => {
            println!(
                "{} actions and {} triggers: all valid",
                m.actions.len(),
                m.triggers.len()
            );
            std::sync::Arc::new(m)
        }
        Err(found) => {
            problems.extend(found);
            std::sync::Arc::new(Manifests::default())
        }
    };
    if let Some(folder) = connectors_dir
        && !folder.is_dir()
    {
        return Err(anyhow!(
            "the connectors folder {} cannot be read",
            folder.display()
        ));
    }
    problems.extend(Registry::catalogue_problems());
    let registry = Registry::new(manifests, connectors_dir.map(std::path::Path::to_path_buf));
    let found = registry.instance_problems();
    let connectors = registry.shared();
    println!(
        "{} connectors ({}): {}",
        connectors.len(),
        connectors
            .iter()
            .map(|c| c.connector.key.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if found.is_empty() {
            "all valid"
        } else {
            "the others are invalid"
        }
    );
    problems.extend(found);
    if problems.is_empty() {
        return Ok(());
    }
    for problem in &problems {
        println!("{problem}");
    }
    Err(anyhow!("{} problem(s) in the manifests", problems.len()))
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
