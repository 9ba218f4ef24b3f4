//! The operations every resource of the work hierarchy shares: list, get, create, update,
//! find-or-create by external id, and delete. A resource module says what is particular to it
//! (how a row reads, how an input is checked and written) by implementing [`Resource`].

use std::future::Future;

use serde::Serialize;

use crate::access::auth::{Actor, Permission};
use crate::access::idempotency::{self, Answer};
use crate::error::{Error, Result};
use crate::store::clock::now_ms;
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events;
use crate::store::list::{self, ListParams, ListSpec, Page};
use crate::store::patch::Patch;
use crate::store::rows;

pub trait Resource {
    /// The resource as the API shows it.
    type Item: Serialize + Send + Sync;
    /// The body of a create, a patch, or an upsert.
    type Input: Send;
    /// Event noun: `customer` gives `customer.created`.
    const NOUN: &'static str;
    const LIST: ListSpec;
    /// The permission its reads need.
    const READ: Permission = Permission::ReadAll;
    /// The permission its writes need.
    const WRITE: Permission;
    /// Live children that block a delete: (table, column pointing here, what to call them).
    const CHILDREN: &'static [(&'static str, &'static str, &'static str)];

    /// A stored row as the API shows it to `actor` (invoices' `isOverdue` needs the
    /// organization's today).
    fn decode(actor: &Actor, row: &row::Row) -> Result<Self::Item>;

    /// Reads a list request's query; a resource with parameters of its own (invoices'
    /// `overdue`, which needs the organization's today) reads them here.
    fn list_params(_actor: &Actor, query: &[(String, String)]) -> Result<ListParams> {
        ListParams::parse(&Self::LIST, query)
    }
    fn external_id(input: &mut Self::Input) -> &mut Patch<String>;
    /// Checks `input` and inserts it (with its event) inside `tx`.
    fn insert(
        tx: &mut Tx,
        actor: &Actor,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Item>> + Send;
    /// Applies `input` to the locked `row` (with its event, if anything changed) inside `tx`.
    fn update(
        tx: &mut Tx,
        actor: &Actor,
        row: &row::Row,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Item>> + Send;

    /// Refuses a delete the record's state does not allow (a locked entry, an issued invoice).
    fn check_delete(_actor: &Actor, _last: &Self::Item) -> Result<()> {
        Ok(())
    }

    /// Runs in the deleting transaction, after the record is marked deleted.
    fn after_delete(
        _tx: &mut Tx,
        _actor: &Actor,
        _last: &Self::Item,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

pub async fn list<R: Resource>(
    db: &Db,
    actor: &Actor,
    params: &ListParams,
) -> Result<Page<R::Item>> {
    actor.require(R::READ)?;
    list::list(db, actor.org_id(), &R::LIST, params, |row| {
        R::decode(actor, row)
    })
    .await
}

pub async fn get<R: Resource>(db: &Db, actor: &Actor, id: &str) -> Result<R::Item> {
    actor.require(R::READ)?;
    let row = rows::live_row(db, R::LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(R::NOUN))?;
    R::decode(actor, &row)
}

pub async fn create<R: Resource>(db: &Db, actor: &Actor, input: R::Input) -> Result<R::Item> {
    actor.require(R::WRITE)?;
    let mut tx = events::begin_write(db).await?;
    let item = R::insert(&mut tx, actor, input).await?;
    idempotency::record(&mut tx, actor, Answer::Created, &item).await?;
    tx.commit().await?;
    Ok(item)
}

pub async fn update<R: Resource>(
    db: &Db,
    actor: &Actor,
    id: &str,
    input: R::Input,
) -> Result<R::Item> {
    actor.require(R::WRITE)?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, R::LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(R::NOUN))?;
    actor.check_if_match(&R::decode(actor, &row)?)?;
    let item = R::update(&mut tx, actor, &row, input).await?;
    idempotency::record(&mut tx, actor, Answer::Changed, &item).await?;
    tx.commit().await?;
    Ok(item)
}

/// Applies `input` to the record with this external id, or creates it with that id.
/// Returns the record and whether it was created.
pub async fn upsert<R: Resource>(
    db: &Db,
    actor: &Actor,
    external_id: &str,
    mut input: R::Input,
) -> Result<(R::Item, bool)> {
    actor.require(R::WRITE)?;
    check_path_external_id(R::external_id(&mut input), external_id)?;
    *R::external_id(&mut input) = Patch::Value(external_id.to_owned());
    let mut tx = events::begin_write(db).await?;
    let existing =
        rows::live_row_by_external_id(&mut tx, R::LIST.table, actor.org_id(), external_id).await?;
    let result = match existing {
        Some(row) => (R::update(&mut tx, actor, &row, input).await?, false),
        None => (R::insert(&mut tx, actor, input).await?, true),
    };
    tx.commit().await?;
    Ok(result)
}

/// A body's `externalId`, if given, must be the one in the path.
fn check_path_external_id(body: &Patch<String>, path: &str) -> Result<()> {
    match body {
        Patch::Value(v) if v != path => Err(Error::validation(
            "externalId",
            "mismatch",
            "externalId in the body differs from the one in the path",
        )),
        Patch::Null => Err(Error::validation(
            "externalId",
            "mismatch",
            "externalId cannot be null here: the path names it",
        )),
        _ => Ok(()),
    }
}

/// Deletes a record that has no live children, leaving a tombstone and a `{noun}.deleted` event.
pub async fn delete<R: Resource>(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(R::WRITE)?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, R::LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(R::NOUN))?;
    for (table, column, what) in R::CHILDREN {
        let children = rows::count_live_children(&mut tx, table, column, id).await?;
        if children > 0 {
            return Err(Error::conflict(format!(
                "the {} still has {children} {what}; delete them first",
                R::NOUN
            )));
        }
    }
    let last = R::decode(actor, &row)?;
    actor.check_if_match(&last)?;
    R::check_delete(actor, &last)?;
    rows::soft_delete(&mut tx, R::LIST.table, id, now_ms()).await?;
    R::after_delete(&mut tx, actor, &last).await?;
    events::deleted(&mut tx, actor.org_id(), R::NOUN, id, &last).await?;
    tx.commit().await
}

/// Reads a record back inside the transaction that wrote it.
pub async fn reload<R: Resource>(tx: &mut Tx, actor: &Actor, id: &str) -> Result<R::Item> {
    R::decode(actor, &reload_row(tx, R::LIST.table, id).await?)
}

/// The row of a record of `table` inside the transaction that wrote it, for writes made on no
/// actor's behalf (cascades) that decode it themselves.
pub async fn reload_row(tx: &mut Tx, table: &str, id: &str) -> Result<row::Row> {
    let mut sql = Sql::new("SELECT * FROM ");
    sql.push(table).push(" WHERE id = ?").bind(id);
    sql.fetch_one(&mut *tx).await
}
