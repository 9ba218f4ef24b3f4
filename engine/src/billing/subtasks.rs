//! Subtasks: the leaves of the hierarchy that time is logged against.

use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission};
use crate::access::org_users;
use crate::billing::tasks::{self, STATUSES};
use crate::billing::time_entries;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::clock::{format_ms, now_ms};
use crate::store::db::{Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{FilterKind, ListSpec};
use crate::store::patch::Patch;
use crate::store::resource::{self, Resource};
use crate::store::rows;

pub const NOUN: &str = "subtask";

pub const LIST: ListSpec = ListSpec {
    table: "subtasks",
    sorts: &[("name", "name"), ("status", "status")],
    filters: &[
        ("taskId", "task_id", FilterKind::Text),
        ("projectId", "project_id", FilterKind::Text),
        ("name", "name", FilterKind::Text),
        ("status", "status", FilterKind::Text),
        ("assigneeId", "assignee_id", FilterKind::Text),
        ("userId", "assignee_id", FilterKind::Text),
        ("externalId", "external_id", FilterKind::Text),
    ],
    search: Some("name"),
    soft_delete: true,
};

/// The shared operations ([`resource`]) for this resource.
pub struct Subtasks;

impl Resource for Subtasks {
    type Item = Subtask;
    type Input = SubtaskInput;
    const NOUN: &'static str = NOUN;
    const LIST: ListSpec = LIST;
    const WRITE: Permission = Permission::WriteSubtasks;
    const CHILDREN: &'static [(&'static str, &'static str, &'static str)] =
        &[("time_entries", "subtask_id", "time entries")];

    fn decode(_actor: &Actor, row: &row::Row) -> Result<Subtask> {
        from_row(row)
    }

    fn external_id(input: &mut SubtaskInput) -> &mut Patch<String> {
        &mut input.external_id
    }

    async fn insert(tx: &mut Tx, actor: &Actor, input: SubtaskInput) -> Result<Subtask> {
        insert(tx, actor, input).await
    }

    async fn update(
        tx: &mut Tx,
        actor: &Actor,
        row: &row::Row,
        input: SubtaskInput,
    ) -> Result<Subtask> {
        apply_update(tx, actor, row, input).await
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subtask {
    /// `sub_…`
    pub id: String,
    pub task_id: String,
    /// The task's project (derived).
    pub project_id: String,
    pub name: String,
    /// `open`, `in_progress` or `done`.
    pub status: String,
    pub estimate_hours: Option<f64>,
    pub assignee_id: Option<String>,
    pub external_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST`, `PATCH` and `PUT /by-external-id`. On create `taskId` and `name` are
/// required; `projectId` is derived from the task and cannot be set.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubtaskInput {
    /// A task (`tsk_…`) of the organization, in a project that is not archived.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub task_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200,
             pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$", example = "Wireframes")]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = tasks::TaskStatus)]
    pub status: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1000000)]
    pub estimate_hours: Patch<f64>,
    /// An active user (`usr_…`) of the organization.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub assignee_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub external_id: Patch<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Record {
    name: String,
    status: String,
    estimate_seconds: Option<i64>,
    assignee_id: Option<String>,
    external_id: Option<String>,
}

impl Record {
    fn from_row(r: &row::Row) -> Result<Self> {
        Ok(Self {
            name: row::get_str(r, "name")?,
            status: row::get_str(r, "status")?,
            estimate_seconds: row::get_opt_i64(r, "estimate_seconds")?,
            assignee_id: row::get_opt_str(r, "assignee_id")?,
            external_id: row::get_opt_str(r, "external_id")?,
        })
    }

    fn apply(input: SubtaskInput, current: Option<&Record>) -> Result<Self> {
        let mut p = Problems::default();
        let cur = |f: fn(&Record) -> Option<String>| current.and_then(f);
        let name =
            checks::patch_required(&mut p, "name", input.name, cur(|c| Some(c.name.clone())));
        let name = p.take(checks::required_text("name", name, SHORT_TEXT));
        let status = checks::patch_required(
            &mut p,
            "status",
            input.status,
            Some(current.map_or("open".to_owned(), |c| c.status.clone())),
        )
        .and_then(|s| p.take(checks::one_of("status", s, &STATUSES)));
        let estimate_seconds = match input.estimate_hours {
            Patch::Absent => Some(current.and_then(|c| c.estimate_seconds)),
            Patch::Null => Some(None),
            Patch::Value(h) => p.take(checks::opt_hours("estimateHours", Some(h))),
        };
        let external_id = p.take(checks::opt_text(
            "externalId",
            input.external_id.apply(cur(|c| c.external_id.clone())),
            SHORT_TEXT,
        ));
        let ok = p.finish("subtask")?;
        Ok(Record {
            name: ok.get(name)?,
            status: ok.get(status)?,
            estimate_seconds: ok.get(estimate_seconds)?,
            assignee_id: input.assignee_id.apply(cur(|c| c.assignee_id.clone())),
            external_id: ok.get(external_id)?,
        })
    }
}

pub(crate) fn from_row(r: &row::Row) -> Result<Subtask> {
    let rec = Record::from_row(r)?;
    Ok(Subtask {
        id: row::get_str(r, "id")?,
        task_id: row::get_str(r, "task_id")?,
        project_id: row::get_str(r, "project_id")?,
        estimate_hours: checks::hours(rec.estimate_seconds),
        name: rec.name,
        status: rec.status,
        assignee_id: rec.assignee_id,
        external_id: rec.external_id,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

async fn insert(tx: &mut Tx, actor: &Actor, mut input: SubtaskInput) -> Result<Subtask> {
    let task_id = match std::mem::take(&mut input.task_id) {
        Patch::Value(id) => id,
        _ => {
            let mut errors = vec![FieldError::required("taskId")];
            if let Err(Error::Validation(more)) = Record::apply(input, None) {
                errors.extend(more);
            }
            return Err(Error::Validation(errors));
        }
    };
    let task = tasks::parent(tx, actor.org_id(), &task_id, "taskId").await?;
    let rec = Record::apply(input, None)?;
    org_users::check_assignee(tx, actor.org_id(), rec.assignee_id.as_deref()).await?;
    let id = ids::new_id(ids::SUBTASK);
    let now = now_ms();
    Sql::new(
        "INSERT INTO subtasks (id, org_id, task_id, project_id, name, status, estimate_seconds, assignee_id, \
         external_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(&task.id)
    .arg(&task.project_id)
    .arg(rec.name)
    .arg(rec.status)
    .arg(rec.estimate_seconds)
    .arg(rec.assignee_id)
    .arg(rec.external_id)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let subtask = resource::reload::<Subtasks>(tx, actor, &id).await?;
    events::created(tx, actor.org_id(), NOUN, &id, &subtask).await?;
    Ok(subtask)
}

async fn apply_update(
    tx: &mut Tx,
    actor: &Actor,
    row: &row::Row,
    mut input: SubtaskInput,
) -> Result<Subtask> {
    let before = from_row(row)?;
    let (task_id, project_id) = match std::mem::take(&mut input.task_id) {
        Patch::Absent => (before.task_id.clone(), before.project_id.clone()),
        Patch::Null => {
            return Err(Error::validation(
                "taskId",
                "required",
                "taskId cannot be null",
            ));
        }
        Patch::Value(id) if id == before.task_id => (id, before.project_id.clone()),
        Patch::Value(id) => {
            time_entries::refuse_move(tx, "subtask_id", &before.id, "subtask", "taskId").await?;
            let task = tasks::parent(tx, actor.org_id(), &id, "taskId").await?;
            (task.id, task.project_id)
        }
    };
    let assignee_patched = !input.assignee_id.is_absent();
    let current = Record::from_row(row)?;
    let rec = Record::apply(input, Some(&current))?;
    if rec == current && task_id == before.task_id {
        return Ok(before);
    }
    if assignee_patched {
        org_users::check_assignee(tx, actor.org_id(), rec.assignee_id.as_deref()).await?;
    }
    Sql::new(
        "UPDATE subtasks SET task_id = ?, project_id = ?, name = ?, status = ?, estimate_seconds = ?, \
         assignee_id = ?, external_id = ?, updated_at = ? WHERE id = ?",
    )
    .arg(task_id)
    .arg(project_id)
    .arg(rec.name)
    .arg(rec.status)
    .arg(rec.estimate_seconds)
    .arg(rec.assignee_id)
    .arg(rec.external_id)
    .arg(now_ms())
    .arg(&before.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let after = from_row(&resource::reload_row(tx, LIST.table, &before.id).await?)?;
    events::updated(tx, actor.org_id(), NOUN, &before.id, (&before, &after)).await?;
    Ok(after)
}

/// When a task moves to another project its subtasks' derived `projectId` follows, each with
/// its own `subtask.updated` event so that sync clients see the change.
pub(crate) async fn follow_task_move(
    tx: &mut Tx,
    org_id: &str,
    task_id: &str,
    project_id: &str,
) -> Result<()> {
    let rows = Sql::new("SELECT * FROM subtasks WHERE task_id = ? AND deleted_at IS NULL")
        .arg(task_id)
        .fetch_all(&mut *tx)
        .await?;
    for row in rows {
        let before = from_row(&row)?;
        Sql::new("UPDATE subtasks SET project_id = ?, updated_at = ? WHERE id = ?")
            .arg(project_id)
            .arg(now_ms())
            .arg(&before.id)
            .execute(&mut *tx)
            .await?;
        let after = from_row(&resource::reload_row(tx, LIST.table, &before.id).await?)?;
        events::updated(tx, org_id, NOUN, &before.id, (&before, &after)).await?;
    }
    Ok(())
}
