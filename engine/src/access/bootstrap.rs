//! The operator's first step: an organization with its owner and a key, in one transaction.

use serde::Serialize;

use crate::access::api_keys;
use crate::access::auth::Role;
use crate::access::org_users::{self, NewUser};
use crate::access::organizations::{self, NewOrganization, Plan};
use crate::error::Result;
use crate::store::db::Db;
use crate::store::events;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrapped {
    pub organization_id: String,
    pub user_id: String,
    pub api_key: String,
}

pub struct BootstrapInput<'a> {
    pub org_name: &'a str,
    pub email: &'a str,
    pub plan: Plan,
    pub password: Option<&'a str>,
    pub currency: &'a str,
    pub timezone: &'a str,
}

pub async fn bootstrap(db: &Db, input: BootstrapInput<'_>) -> Result<Bootstrapped> {
    let password_hash = input.password.map(org_users::hash_password).transpose()?;
    let mut tx = events::begin_write(db).await?;
    let organization_id = organizations::insert(
        &mut tx,
        NewOrganization {
            name: input.org_name,
            plan: input.plan,
            currency: input.currency,
            timezone: input.timezone,
        },
    )
    .await?;
    let name = input.email.split('@').next().unwrap_or(input.email);
    let user_id = org_users::insert_operator(
        &mut tx,
        &organization_id,
        input.currency,
        NewUser {
            email: input.email,
            name,
            role: Role::Owner,
            password_hash,
        },
    )
    .await?;
    let new_key = api_keys::NewApiKey {
        org_id: &organization_id,
        user_id: &user_id,
        name: "bootstrap",
        role: Role::Owner,
        expires_at: None,
    };
    let key = api_keys::insert(&mut tx, new_key).await?;
    tx.commit().await?;
    Ok(Bootstrapped {
        organization_id,
        user_id,
        api_key: key.key,
    })
}
