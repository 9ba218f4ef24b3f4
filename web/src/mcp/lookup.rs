//! Customers, projects, tasks and subtasks found by name, so "Acme" becomes an id: exact
//! matches (ignoring case) first, then names that start with it, then names that contain it.
//! A name that fits several records is refused with the candidates, never guessed.

use serde_json::{Value, json};

use super::api::{Api, Failure, failure, with_query};

/// A level of the work hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Customer,
    Project,
    Task,
    Subtask,
}

/// The most records one lookup reads.
const PAGE: &str = "50";

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Customer, Kind::Project, Kind::Task, Kind::Subtask];

    pub fn parse(text: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.noun() == text)
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Project => "project",
            Kind::Task => "task",
            Kind::Subtask => "subtask",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Customer => "/customers",
            Kind::Project => "/projects",
            Kind::Task => "/tasks",
            Kind::Subtask => "/subtasks",
        }
    }

    /// The id prefix of this kind's records (`cus_`): such a reference is an id, not a name.
    fn id_prefix(self) -> &'static str {
        match self {
            Kind::Customer => "cus_",
            Kind::Project => "prj_",
            Kind::Task => "tsk_",
            Kind::Subtask => "sub_",
        }
    }

    /// The query parameter naming a parent of the level above.
    fn parent_field(self) -> Option<&'static str> {
        match self {
            Kind::Customer => None,
            Kind::Project => Some("customerId"),
            Kind::Task => Some("projectId"),
            Kind::Subtask => Some("taskId"),
        }
    }
}

/// What a tool shows of a record: its id, name and parents.
fn summary(kind: Kind, record: &Value) -> Value {
    let mut out = json!({"kind": kind.noun(), "id": record["id"], "name": record["name"]});
    for field in ["customerId", "projectId", "taskId"] {
        if let Some(id) = record.get(field).filter(|v| v.is_string()) {
            out[field] = id.clone();
        }
    }
    if record["isArchived"] == json!(true) {
        out["isArchived"] = json!(true);
    }
    out
}

/// 0 for an exact match, 1 for a prefix, 2 for the rest (the API already filtered by contains).
fn rank(name: &str, wanted: &str) -> u8 {
    let name = name.to_lowercase();
    if name == wanted {
        0
    } else if name.starts_with(wanted) {
        1
    } else {
        2
    }
}

/// Records of `kind` whose name contains `name` (any case), under `parent` when given, best
/// match first.
pub async fn find(
    api: &Api<'_>,
    kind: Kind,
    name: &str,
    parent: Option<&str>,
) -> Result<Vec<Value>, Failure> {
    let wanted = name.trim().to_lowercase();
    let mut pairs = vec![("q", name.trim()), ("pageSize", PAGE)];
    if let (Some(field), Some(id)) = (kind.parent_field(), parent) {
        pairs.push((field, id));
    }
    let body = api.get(&with_query(kind.path(), &pairs)).await?;
    let mut found: Vec<(u8, Value)> = body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                rank(r["name"].as_str().unwrap_or_default(), &wanted),
                summary(kind, r),
            )
        })
        .collect();
    found.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1["name"].as_str().cmp(&b.1["name"].as_str()))
    });
    Ok(found
        .into_iter()
        .map(|(rank, mut s)| {
            s["match"] = json!(["exact", "prefix", "contains"][usize::from(rank)]);
            s
        })
        .collect())
}

/// The one record `reference` (an id or a name) means among `kind`'s records under `parent`;
/// with no reference, the parent's only child. `None` when there is neither a reference nor a
/// parent to narrow by.
pub async fn resolve(
    api: &Api<'_>,
    kind: Kind,
    reference: Option<&str>,
    parent: Option<&Value>,
) -> Result<Option<Value>, Failure> {
    let reference = reference.map(str::trim).filter(|r| !r.is_empty());
    if reference.is_none() && parent.is_none() {
        return Ok(None);
    }
    match fitting(api, kind, reference, parent).await? {
        Some(record) => Ok(Some(record)),
        None => Err(nothing(kind, reference, parent)),
    }
}

/// Like [`resolve`] under a known `parent`, but `None` when nothing there fits (no record
/// named like `reference`, or no child at all when there is no reference), so the caller may
/// create it. Several that fit are still refused with the candidates.
pub async fn resolve_under(
    api: &Api<'_>,
    kind: Kind,
    reference: Option<&str>,
    parent: &Value,
) -> Result<Option<Value>, Failure> {
    let reference = reference.map(str::trim).filter(|r| !r.is_empty());
    fitting(api, kind, reference, Some(parent)).await
}

/// The record `reference` means, or the parent's only child; `None` when none fits.
async fn fitting(
    api: &Api<'_>,
    kind: Kind,
    reference: Option<&str>,
    parent: Option<&Value>,
) -> Result<Option<Value>, Failure> {
    match (reference, parent.and_then(|p| p["id"].as_str())) {
        (Some(id), _) if id.starts_with(kind.id_prefix()) => {
            let record = api.get(&format!("{}/{id}", kind.path())).await?;
            Ok(Some(summary(kind, &record)))
        }
        (Some(name), _) => by_name(api, kind, name, parent).await,
        (None, Some(id)) => only_child(api, kind, id, parent).await,
        (None, None) => Ok(None),
    }
}

/// The `not_found` answer when nothing fits.
fn nothing(kind: Kind, reference: Option<&str>, parent: Option<&Value>) -> Failure {
    let message = match reference {
        Some(name) => format!(
            "no {} is named like {}{}",
            kind.noun(),
            timix_engine::store::json::quote(name),
            under(parent)
        ),
        None => format!("there is no {}{}", kind.noun(), under(parent)),
    };
    failure("not_found", message)
}

async fn by_name(
    api: &Api<'_>,
    kind: Kind,
    name: &str,
    parent: Option<&Value>,
) -> Result<Option<Value>, Failure> {
    let found = find(api, kind, name, parent.and_then(|p| p["id"].as_str())).await?;
    let exact: Vec<Value> = found
        .iter()
        .filter(|f| f["match"] == "exact")
        .cloned()
        .collect();
    match (exact.as_slice(), found.as_slice()) {
        ([one], _) | ([], [one]) => Ok(Some(one.clone())),
        (_, []) => Ok(None),
        _ => Err(ambiguous(
            format!(
                "{} matches {} {}s{}; pass an id or the exact name",
                timix_engine::store::json::quote(name),
                found.len(),
                kind.noun(),
                under(parent)
            ),
            &found,
        )),
    }
}

async fn only_child(
    api: &Api<'_>,
    kind: Kind,
    parent_id: &str,
    parent: Option<&Value>,
) -> Result<Option<Value>, Failure> {
    let Some(field) = kind.parent_field() else {
        return Err(failure("invalid_parameter", "name a customer"));
    };
    let body = api
        .get(&with_query(
            kind.path(),
            &[(field, parent_id), ("pageSize", PAGE)],
        ))
        .await?;
    let children: Vec<Value> = body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["isArchived"] != json!(true))
        .map(|r| summary(kind, r))
        .collect();
    match children.as_slice() {
        [one] => Ok(Some(one.clone())),
        [] => Ok(None),
        many => Err(ambiguous(
            format!(
                "there are {} {}s{}; say which one",
                many.len(),
                kind.noun(),
                under(parent)
            ),
            many,
        )),
    }
}

/// Finds or creates the `kind` record named `name` under `parent` through the API (so with its
/// roles and checks): its summary, and whether this call created it.
///
/// An assistant may send several calls at once, each finding nothing and creating: so the
/// record is upserted at `PUT …/by-external-id/{id}` with an id derived from the parent and the
/// name, and calls that race end with one record. When two inserts still collide (409), the
/// winner's record is read back.
pub async fn find_or_create_under(
    api: &Api<'_>,
    kind: Kind,
    name: &str,
    parent: &Value,
) -> Result<(Value, bool), Failure> {
    let Some(field) = kind.parent_field() else {
        return Err(failure("invalid_parameter", "a customer has no parent"));
    };
    let parent_id = parent["id"].as_str().unwrap_or_default();
    let external_id = derived_external_id(parent_id, name);
    let mut body = json!({"name": name});
    body[field] = json!(parent_id);
    let path = format!("{}/by-external-id/{external_id}", kind.path());
    match api.upsert(&path, body).await {
        Ok((record, created)) => Ok((summary(kind, &record), created)),
        Err(conflict) if conflict["status"] == 409 => {
            let found = api
                .get(&with_query(kind.path(), &[("externalId", &external_id)]))
                .await?;
            match found["items"].as_array().and_then(|items| items.first()) {
                Some(record) => Ok((summary(kind, record), false)),
                None => Err(conflict),
            }
        }
        Err(error) => Err(error),
    }
}

/// The external id of the record named `name` (trimmed, any case) under `parent_id`: the same
/// for every call, and safe in a path.
fn derived_external_id(parent_id: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.trim().to_lowercase().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("mcp-{parent_id}-{hex}")
}

/// " under project \"Website\"" for messages.
fn under(parent: Option<&Value>) -> String {
    parent.map_or_else(String::new, |p| {
        format!(
            " under {} {}",
            p["kind"].as_str().unwrap_or("parent"),
            p["name"]
        )
    })
}

fn ambiguous(message: String, candidates: &[Value]) -> Failure {
    json!({"code": "ambiguous", "message": message, "candidates": candidates})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_external_id_depends_on_the_parent_and_the_name_in_any_case() {
        let id = derived_external_id("tsk_1", "Design");
        assert_eq!(id, derived_external_id("tsk_1", " design "));
        assert_ne!(id, derived_external_id("tsk_2", "Design"));
        assert_ne!(id, derived_external_id("tsk_1", "Build"));
        assert!(id.starts_with("mcp-tsk_1-"), "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
            "{id}"
        );
    }
}
