//! Per-organization quotas on what keeps working in the background: flows, webhooks and REST
//! hooks. Each is counted inside the creating transaction, so a refused create writes nothing.

use crate::error::{Error, Result};
use crate::store::db::{Backend, Sql, Tx, row};

/// The most live flows, webhooks and REST hooks one organization may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub flows: u32,
    pub webhooks: u32,
    pub hooks: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            flows: 200,
            webhooks: 100,
            hooks: 500,
        }
    }
}

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Flows,
    Webhooks,
    Hooks,
}

impl Counted {
    fn plural(self) -> &'static str {
        match self {
            Counted::Flows => "flows",
            Counted::Webhooks => "webhooks",
            Counted::Hooks => "REST hooks",
        }
    }

    /// The setting an operator raises it with.
    fn setting(self) -> &'static str {
        match self {
            Counted::Flows => "TIMIX_MAX_FLOWS",
            Counted::Webhooks => "TIMIX_MAX_WEBHOOKS",
            Counted::Hooks => "TIMIX_MAX_HOOKS",
        }
    }

    fn counting(self) -> &'static str {
        match self {
            Counted::Flows => "SELECT COUNT(*) FROM flows WHERE org_id = ? AND deleted_at IS NULL",
            Counted::Webhooks => {
                "SELECT COUNT(*) FROM subscriptions WHERE org_id = ? AND kind = 'webhook' AND deleted_at IS NULL"
            }
            Counted::Hooks => {
                "SELECT COUNT(*) FROM subscriptions WHERE org_id = ? AND kind = 'hook' AND deleted_at IS NULL"
            }
        }
    }
}

impl Quotas {
    fn of(&self, what: Counted) -> u32 {
        match what {
            Counted::Flows => self.flows,
            Counted::Webhooks => self.webhooks,
            Counted::Hooks => self.hooks,
        }
    }

    /// Refuses with 409 `limit_reached` when the organization already has its most of `what`.
    /// Run it in the creating transaction: on Postgres it locks the organization's row, so two
    /// concurrent creates cannot both take the last place.
    pub async fn check(&self, tx: &mut Tx, org_id: &str, what: Counted) -> Result<()> {
        if tx.backend() == Backend::Postgres {
            Sql::new("SELECT id FROM organizations WHERE id = ? FOR UPDATE")
                .arg(org_id)
                .fetch_optional(&mut *tx)
                .await?;
        }
        let row = Sql::new(what.counting())
            .arg(org_id)
            .fetch_one(&mut *tx)
            .await?;
        let count = row::get_i64(&row, 0)?;
        let cap = self.of(what);
        if count < i64::from(cap) {
            return Ok(());
        }
        Err(Error::Conflict {
            code: "limit_reached",
            message: format!(
                "this organization has {count} {}, the most allowed ({cap}, set by the operator's {}); delete one first",
                what.plural(),
                what.setting()
            ),
        })
    }
}
