//! Tasks: units of work in a project, with their own rate, estimate and assignee.

use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission};
use crate::access::org_users;
use crate::billing::projects;
use crate::billing::subtasks;
use crate::billing::time_entries;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, LONG_TEXT, SHORT_TEXT};
use crate::store::clock::{format_ms, now_ms};
use crate::store::db::{Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{FilterKind, ListSpec};
use crate::store::money::{Amount, format_amount, patch_amount};
use crate::store::patch::Patch;
use crate::store::resource::{self, Resource};
use crate::store::rows;

pub const NOUN: &str = "task";
pub const STATUSES: [&str; 3] = ["open", "in_progress", "done"];

pub const LIST: ListSpec = ListSpec {
    table: "tasks",
    sorts: &[("name", "name"), ("status", "status")],
    filters: &[
        ("projectId", "project_id", FilterKind::Text),
        ("name", "name", FilterKind::Text),
        ("status", "status", FilterKind::Text),
        ("assigneeId", "assignee_id", FilterKind::Text),
        ("userId", "assignee_id", FilterKind::Text),
        ("externalId", "external_id", FilterKind::Text),
        ("billable", "billable", FilterKind::Bool),
    ],
    search: Some("name"),
    soft_delete: true,
};

/// The shared operations ([`resource`]) for this resource.
pub struct Tasks;

impl Resource for Tasks {
    type Item = Task;
    type Input = TaskInput;
    const NOUN: &'static str = NOUN;
    const LIST: ListSpec = LIST;
    const WRITE: Permission = Permission::WriteTasks;
    const CHILDREN: &'static [(&'static str, &'static str, &'static str)] =
        &[("subtasks", "task_id", "subtask(s)")];

    fn decode(_actor: &Actor, row: &row::Row) -> Result<Task> {
        from_row(row)
    }

    fn external_id(input: &mut TaskInput) -> &mut Patch<String> {
        &mut input.external_id
    }

    async fn insert(tx: &mut Tx, actor: &Actor, input: TaskInput) -> Result<Task> {
        insert(tx, actor, input).await
    }

    async fn update(tx: &mut Tx, actor: &Actor, row: &row::Row, input: TaskInput) -> Result<Task> {
        apply_update(tx, actor, row, input).await
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// `tsk_…`
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: Option<String>,
    /// `open`, `in_progress` or `done`.
    pub status: String,
    pub billable: bool,
    /// The project's currency.
    pub currency: String,
    pub hourly_rate: Option<String>,
    pub estimate_hours: Option<f64>,
    /// An org user (`usr_…`).
    pub assignee_id: Option<String>,
    pub external_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST`, `PATCH` and `PUT /by-external-id`. On create `projectId` and `name` are
/// required; `status` defaults to `open`, `billable` to whether the project is billable.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskInput {
    /// A live, not archived project (`prj_…`) of the organization.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub project_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200,
             pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$", example = "Design")]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Patch<String>,
    #[serde(default)]
    #[schema(value_type = TaskStatus)]
    pub status: Patch<String>,
    #[serde(default)]
    #[schema(value_type = bool)]
    pub billable: Patch<bool>,
    /// In the project's currency: a decimal string with at most two decimals (none for a
    /// currency without minor units, such as JPY).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,13}(\.[0-9]{1,2}0*)?$")]
    pub hourly_rate: Patch<Amount>,
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

/// The schema of a task's or a subtask's `status`: one of [`STATUSES`].
pub struct TaskStatus;

impl utoipa::PartialSchema for TaskStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        checks::one_of_schema("Where the work stands; `open` unless said.", STATUSES)
    }
}

impl utoipa::ToSchema for TaskStatus {}

#[derive(Debug, Clone, PartialEq)]
struct Record {
    name: String,
    description: Option<String>,
    status: String,
    billable: bool,
    hourly_rate: Option<i64>,
    estimate_seconds: Option<i64>,
    assignee_id: Option<String>,
    external_id: Option<String>,
}

impl Record {
    fn from_row(r: &row::Row) -> Result<Self> {
        Ok(Self {
            name: row::get_str(r, "name")?,
            description: row::get_opt_str(r, "description")?,
            status: row::get_str(r, "status")?,
            billable: row::get_bool(r, "billable")?,
            hourly_rate: row::get_opt_i64(r, "hourly_rate")?,
            estimate_seconds: row::get_opt_i64(r, "estimate_seconds")?,
            assignee_id: row::get_opt_str(r, "assignee_id")?,
            external_id: row::get_opt_str(r, "external_id")?,
        })
    }

    fn apply(
        input: TaskInput,
        current: Option<&Record>,
        currency: &str,
        default_billable: bool,
    ) -> Result<Self> {
        let mut p = Problems::default();
        let cur = |f: fn(&Record) -> Option<String>| current.and_then(f);
        let name =
            checks::patch_required(&mut p, "name", input.name, cur(|c| Some(c.name.clone())));
        let name = p.take(checks::required_text("name", name, SHORT_TEXT));
        let description = p.take(checks::opt_text(
            "description",
            input.description.apply(cur(|c| c.description.clone())),
            LONG_TEXT,
        ));
        let status = checks::patch_required(
            &mut p,
            "status",
            input.status,
            Some(current.map_or("open".to_owned(), |c| c.status.clone())),
        )
        .and_then(|s| p.take(checks::one_of("status", s, &STATUSES)));
        let billable = checks::patch_required(
            &mut p,
            "billable",
            input.billable,
            Some(current.map_or(default_billable, |c| c.billable)),
        );
        let hourly_rate = p.take(patch_amount(
            "hourlyRate",
            input.hourly_rate,
            current.and_then(|c| c.hourly_rate),
            currency,
            currency,
        ));
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
        let ok = p.finish("task")?;
        Ok(Record {
            name: ok.get(name)?,
            description: ok.get(description)?,
            status: ok.get(status)?,
            billable: ok.get(billable)?,
            hourly_rate: ok.get(hourly_rate)?,
            estimate_seconds: ok.get(estimate_seconds)?,
            // Checked against the organization's users by the caller.
            assignee_id: input.assignee_id.apply(cur(|c| c.assignee_id.clone())),
            external_id: ok.get(external_id)?,
        })
    }
}

pub(crate) fn from_row(r: &row::Row) -> Result<Task> {
    let rec = Record::from_row(r)?;
    let currency = row::get_str(r, "currency")?;
    Ok(Task {
        id: row::get_str(r, "id")?,
        project_id: row::get_str(r, "project_id")?,
        hourly_rate: rec.hourly_rate.map(|m| format_amount(m, &currency)),
        estimate_hours: checks::hours(rec.estimate_seconds),
        currency,
        name: rec.name,
        description: rec.description,
        status: rec.status,
        billable: rec.billable,
        assignee_id: rec.assignee_id,
        external_id: rec.external_id,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

async fn insert(tx: &mut Tx, actor: &Actor, mut input: TaskInput) -> Result<Task> {
    let project_id = match std::mem::take(&mut input.project_id) {
        Patch::Value(id) => id,
        _ => {
            let mut errors = vec![FieldError::required("projectId")];
            if let Err(Error::Validation(more)) = Record::apply(input, None, "EUR", true) {
                errors.extend(more);
            }
            return Err(Error::Validation(errors));
        }
    };
    let project = projects::parent(tx, actor.org_id(), &project_id, "projectId").await?;
    let rec = Record::apply(
        input,
        None,
        &project.currency,
        project.billing_method != "non_billable",
    )?;
    org_users::check_assignee(tx, actor.org_id(), rec.assignee_id.as_deref()).await?;
    let id = ids::new_id(ids::TASK);
    let now = now_ms();
    Sql::new(
        "INSERT INTO tasks (id, org_id, project_id, name, description, status, billable, currency, hourly_rate, \
         estimate_seconds, assignee_id, external_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(&project.id)
    .arg(rec.name)
    .arg(rec.description)
    .arg(rec.status)
    .arg(rec.billable)
    .arg(&project.currency)
    .arg(rec.hourly_rate)
    .arg(rec.estimate_seconds)
    .arg(rec.assignee_id)
    .arg(rec.external_id)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let task = resource::reload::<Tasks>(tx, actor, &id).await?;
    events::created(tx, actor.org_id(), NOUN, &id, &task).await?;
    Ok(task)
}

async fn apply_update(
    tx: &mut Tx,
    actor: &Actor,
    row: &row::Row,
    mut input: TaskInput,
) -> Result<Task> {
    let before = from_row(row)?;
    let project_id = match std::mem::take(&mut input.project_id) {
        Patch::Absent => before.project_id.clone(),
        Patch::Null => {
            return Err(Error::validation(
                "projectId",
                "required",
                "projectId cannot be null",
            ));
        }
        Patch::Value(id) if id == before.project_id => id,
        Patch::Value(id) => {
            time_entries::refuse_move(tx, "task_id", &before.id, "task", "projectId").await?;
            let project = projects::parent(tx, actor.org_id(), &id, "projectId").await?;
            if project.currency != before.currency {
                return Err(Error::validation(
                    "projectId",
                    "currency_mismatch",
                    format!(
                        "the task's rate is in {}, the new project bills in {}",
                        before.currency, project.currency
                    ),
                ));
            }
            project.id
        }
    };
    let assignee_patched = !input.assignee_id.is_absent();
    let current = Record::from_row(row)?;
    let rec = Record::apply(input, Some(&current), &before.currency, before.billable)?;
    if rec == current && project_id == before.project_id {
        return Ok(before);
    }
    if assignee_patched {
        org_users::check_assignee(tx, actor.org_id(), rec.assignee_id.as_deref()).await?;
    }
    let now = now_ms();
    Sql::new(
        "UPDATE tasks SET project_id = ?, name = ?, description = ?, status = ?, billable = ?, hourly_rate = ?, \
         estimate_seconds = ?, assignee_id = ?, external_id = ?, updated_at = ? WHERE id = ?",
    )
    .arg(&project_id)
    .arg(rec.name)
    .arg(rec.description)
    .arg(rec.status)
    .arg(rec.billable)
    .arg(rec.hourly_rate)
    .arg(rec.estimate_seconds)
    .arg(rec.assignee_id)
    .arg(rec.external_id)
    .arg(now)
    .arg(&before.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    if project_id != before.project_id {
        subtasks::follow_task_move(tx, actor.org_id(), &before.id, &project_id).await?;
    }
    let after = resource::reload::<Tasks>(tx, actor, &before.id).await?;
    events::updated(tx, actor.org_id(), NOUN, &before.id, (&before, &after)).await?;
    if before.hourly_rate != after.hourly_rate || before.billable != after.billable {
        time_entries::reprice(tx, actor.org_id(), "task_id", &before.id).await?;
    }
    Ok(after)
}

/// The parent check used by subtasks: a live task whose project is not archived.
pub(crate) async fn parent(tx: &mut Tx, org_id: &str, id: &str, field: &str) -> Result<Task> {
    let row = rows::live_row(&mut *tx, LIST.table, org_id, id)
        .await?
        .ok_or_else(|| {
            Error::validation(
                field,
                "not_found",
                format!("{field} does not name a task of this organization"),
            )
        })?;
    let task = from_row(&row)?;
    let archived = Sql::new("SELECT is_archived FROM projects WHERE id = ?")
        .arg(&task.project_id)
        .fetch_one(&mut *tx)
        .await?;
    if row::get_bool(&archived, "is_archived")? {
        return Err(Error::validation(
            field,
            "archived",
            format!("{field} names a task of an archived project"),
        ));
    }
    Ok(task)
}
