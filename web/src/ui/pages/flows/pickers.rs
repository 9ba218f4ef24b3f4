//! Pickers for a step's inputs: a field whose values form a known set is chosen, not typed.
//! `x-lookup` ids offer this instance's records and the flow's own data of the same noun (the
//! trigger's customer, the project of an earlier step); enums are selects, booleans switches; dates
//! and instants are date inputs. Every picker keeps "or map a value": a text field for a
//! variable or a template.
//!
//! The form sends a picker as `steps[i].pick.<key>` (a select, a switch) or `steps[i].when.<key>` (a date
//! input) beside the text `steps[i].input.<key>`; [`resolve`] makes them one input value.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use timix_connectors::apps;

use crate::ui::{Shared, UiResult, Viewer};

/// The select option that means "the text field below holds the value".
pub const MAP: &str = "__map";

/// Records offered per lookup key (`customers`), as `{value, label}`.
pub type Records = BTreeMap<String, Vec<Value>>;

/// Records listed in a picker before any search.
const FIRST_RECORDS: usize = 100;

/// Where a variable option comes from: the trigger, or an earlier step.
pub struct Source {
    /// `trigger`, `steps.project`
    pub path: String,
    /// `the trigger`, `step 1 (project)`
    pub title: String,
    /// `customer`, as [`noun_key`] makes it.
    pub noun: String,
    pub sample: Value,
}

/// `Customer` and `customers` and `org-users` → `customer` and `org_user`.
pub fn noun_key(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .replace(['-', ' '], "_")
        .trim_end_matches('s')
        .to_owned()
}

/// A step's picks made into its input: a chosen option beats the text, a date beats the text
/// (the script empties the date when a value is mapped). Returns the keys left in map mode.
pub fn resolve(
    input: &mut BTreeMap<String, String>,
    picks: &BTreeMap<String, String>,
    dates: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let mut mapped = BTreeSet::new();
    for (key, pick) in picks {
        if pick == MAP {
            mapped.insert(key.clone());
        } else if !pick.is_empty() {
            input.insert(key.clone(), pick.clone());
        }
    }
    for (key, date) in dates {
        if !date.is_empty() {
            input.insert(key.clone(), instant_from_input(date));
        }
    }
    mapped
}

/// A browser's `datetime-local` value (`2026-11-23T09:00`) as the API's instant, in UTC.
fn instant_from_input(text: &str) -> String {
    match text.len() {
        16 if text.as_bytes()[10] == b'T' => format!("{text}:00Z"),
        19 if text.as_bytes()[10] == b'T' => format!("{text}Z"),
        _ => text.to_owned(),
    }
}

/// An instant as a `datetime-local` value; `None` when it is not one (a template).
fn instant_for_input(text: &str) -> Option<String> {
    let ok = text.len() >= 16
        && text.as_bytes()[10] == b'T'
        && text.ends_with('Z')
        && text[..10].bytes().filter(|b| *b == b'-').count() == 2;
    ok.then(|| text[..16].to_owned())
}

fn is_date(text: &str) -> bool {
    text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// What one input field is picked with.
pub struct FieldPick<'a> {
    pub field: &'a apps::Field,
    /// The property's `format` (`date`, `date-time`).
    pub format: Option<&'a str>,
    /// The action's connector (`slack` of `slack.post_message`); `None` for timix.
    pub connector: Option<&'a str>,
    pub value: &'a str,
    pub mapped: bool,
}

/// The picker part of a field's template context; `{}` for a field typed as text.
pub fn picker(pick: &FieldPick<'_>, records: &Records, sources: &[Source]) -> Value {
    let field = pick.field;
    let value = pick.value;
    if pick.format == Some("date") {
        let date = if is_date(value) { value } else { "" };
        return json!({"picker": "date", "dateValue": date, "mapOpen": !value.is_empty() && date.is_empty()});
    }
    if field.kind == "datetime" || pick.format == Some("date-time") {
        let date = instant_for_input(value);
        return json!({"picker": "datetime", "mapOpen": !value.is_empty() && date.is_none(), "dateValue": date});
    }
    // (label, options, whether the options are records a search replaces)
    let mut groups: Vec<(String, Vec<Value>, bool)> = Vec::new();
    let mut lookup_url = None;
    if let Some(lookup) = &field.lookup {
        let noun = noun_key(lookup);
        groups.push((
            "From the flow's data".into(),
            data_options(&noun, sources),
            false,
        ));
        match pick.connector {
            None => {
                groups.push((
                    titled(lookup),
                    records.get(lookup).cloned().unwrap_or_default(),
                    true,
                ));
                lookup_url = Some(format!("/flows/lookup?list={lookup}"));
            }
            Some(connector) => {
                groups.push((titled(lookup), Vec::new(), true));
                lookup_url = Some(format!("/flows/lookup?connector={connector}&name={lookup}"));
            }
        }
    } else if !field.choices.is_empty() {
        let options = field
            .choices
            .iter()
            .map(|c| json!({"value": c, "label": c}))
            .collect();
        groups.push(("Choices".into(), options, false));
    } else if field.kind == "boolean" {
        return toggle(pick);
    } else {
        return json!({});
    }
    // A required id with one obvious source in the flow's data (the trigger's customer for a
    // new project) starts chosen: the usual case costs no click.
    let obvious = match groups.first() {
        Some((_, data, false)) if data.len() == 1 => data[0]["value"].as_str().map(str::to_owned),
        _ => None,
    };
    let value = match obvious {
        Some(only)
            if field.lookup.is_some() && field.required && value.is_empty() && !pick.mapped =>
        {
            only
        }
        _ => value.to_owned(),
    };
    let value = value.as_str();
    let mut found = value.is_empty();
    for (_, options, _) in &mut groups {
        for option in options.iter_mut() {
            let selected = !pick.mapped && option["value"].as_str() == Some(value);
            found |= selected;
            option["selected"] = json!(selected);
        }
    }
    // An id no list holds (past the first page, or archived) stays chosen, shown as itself.
    let is_template = value.contains("{{");
    if !found && field.lookup.is_some() && !is_template && !pick.mapped {
        if let Some((_, records, _)) = groups.last_mut() {
            records.push(json!({"value": value, "label": value, "selected": true}));
        }
        found = true;
    }
    let map_mode = pick.mapped || !found;
    let groups: Vec<Value> = groups
        .into_iter()
        .filter(|(_, options, records)| !options.is_empty() || *records)
        .map(|(label, options, records)| json!({"label": label, "options": options, "records": records}))
        .collect();
    json!({
        "picker": "select",
        "groups": groups,
        "mapMode": map_mode,
        "noneChosen": value.is_empty() && !pick.mapped,
        "lookupUrl": lookup_url,
        "searchLabel": field.lookup.as_deref().map(|l| format!("Search {}", l.replace('-', " "))),
    })
}

/// A yes/no field as a switch (a checkbox with `role=switch`), with "Map a value…" beside it.
/// The form sends a hidden "off" value before the switch, so the switch's `true` wins when it
/// is on; an optional field that was never set stays unset while the switch is off.
fn toggle(pick: &FieldPick<'_>) -> Value {
    let value = pick.value.trim();
    let is_flag = matches!(value, "" | "true" | "false");
    let off = if value.is_empty() && !pick.field.required {
        ""
    } else {
        "false"
    };
    json!({
        "picker": "toggle",
        "on": value == "true",
        "offValue": off,
        "mapMode": pick.mapped || !is_flag,
    })
}

/// `org-users` → `Org users`.
fn titled(lookup: &str) -> String {
    let text = lookup.replace(['-', '_'], " ");
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// The flow's own values of a noun: a trigger or step that is one (`{{trigger.id}}`), and
/// fields that name one (`{{steps.project.customerId}}`).
fn data_options(noun: &str, sources: &[Source]) -> Vec<Value> {
    let id_field = camel_id(noun);
    let mut out = Vec::new();
    for source in sources {
        let named = source.sample["name"]
            .as_str()
            .map(|n| format!(" (e.g. {n})"))
            .unwrap_or_default();
        let label = titled(noun);
        if source.noun == noun {
            out.push(json!({
                "value": format!("{{{{{}.id}}}}", source.path),
                "label": format!("{label} from {}{named}", source.title),
            }));
        }
        if source.sample.get(&id_field).is_some() {
            out.push(json!({
                "value": format!("{{{{{}.{id_field}}}}}", source.path),
                "label": format!("{label} of {}", source.title),
            }));
        }
    }
    out
}

/// `org_user` → `orgUserId`.
fn camel_id(noun: &str) -> String {
    let mut out = String::new();
    for (i, part) in noun.split('_').enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            let mut chars = part.chars();
            if let Some(c) = chars.next() {
                out.extend(c.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out + "Id"
}

/// Records for each lookup of this instance, as the viewer may list them; a list the viewer
/// may not read offers nothing (the text field still takes an id).
pub async fn records(ui: &Shared, viewer: &Viewer, lookups: BTreeSet<String>) -> Records {
    let mut out = Records::new();
    for lookup in lookups {
        let path = format!("/{lookup}?pageSize={FIRST_RECORDS}");
        let items = ui.items(viewer, &path).await.unwrap_or_default();
        out.insert(lookup, items.iter().map(record_option).collect());
    }
    out
}

/// A record as an option: its name (and e-mail, for people).
fn record_option(record: &Value) -> Value {
    let name = record["name"].as_str().unwrap_or_default();
    let label = match record["email"].as_str() {
        Some(email) if !name.is_empty() => format!("{name} <{email}>"),
        Some(email) => email.to_owned(),
        None if name.is_empty() => record["id"].as_str().unwrap_or_default().to_owned(),
        None => name.to_owned(),
    };
    json!({"value": record["id"], "label": label})
}

#[derive(Deserialize)]
pub struct LookupQuery {
    list: Option<String>,
    connector: Option<String>,
    name: Option<String>,
    #[serde(rename = "connectionId")]
    connection_id: Option<String>,
    #[serde(default)]
    q: String,
}

/// `GET /flows/lookup?list=customers&q=ac` (a list of this instance) or
/// `?connector=slack&name=channels&connectionId=…&q=` (a connector's lookup): the choices as
/// `[{value, label}]`, read through the API as the viewer, for the pickers' search.
pub async fn lookup(
    State(ui): State<Shared>,
    viewer: Viewer,
    Query(query): Query<LookupQuery>,
) -> UiResult<Json<Value>> {
    let q = query.q.trim();
    let known = apps::lookups(&ui.app.manifests);
    let path = match (&query.list, &query.connector, &query.name) {
        (Some(list), None, None) if known.iter().any(|l| &l.key == list) => {
            let search = super::super::query(&[("q", Some(q)), ("pageSize", Some("50"))]);
            format!("/{list}?{search}")
        }
        (None, Some(connector), Some(name)) => {
            super::super::checked_id(connector, "connector")?;
            super::super::checked_id(name, "lookup")?;
            let search = super::super::query(&[
                ("q", Some(q)),
                ("connectionId", query.connection_id.as_deref()),
            ]);
            format!("/connectors/{connector}/lookups/{name}?{search}")
        }
        _ => return Err(crate::ui::UiError::not_found("lookup")),
    };
    let items = if query.list.is_some() {
        ui.items(&viewer, &path).await
    } else {
        connector_items(&ui, &viewer, &path).await
    };
    let items = match items {
        Ok(items) => items,
        Err(failure) => return Ok(Json(json!({"items": [], "error": failure.message}))),
    };
    let items: Vec<Value> = if query.list.is_some() {
        items.iter().map(record_option).collect()
    } else {
        items
            .iter()
            .map(|i| json!({"value": i["value"], "label": i["label"]}))
            .collect()
    };
    Ok(Json(json!({ "items": items })))
}

/// A connector lookup's matches across its pages (a service that cannot search by name is
/// matched here page by page), up to [`LOOKUP_PAGES`] pages or [`LOOKUP_ITEMS`] items.
async fn connector_items(
    ui: &Shared,
    viewer: &Viewer,
    path: &str,
) -> Result<Vec<Value>, crate::ui::ApiFailure> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..LOOKUP_PAGES {
        let page_path = match &cursor {
            Some(c) => format!("{path}&{}", super::super::query(&[("cursor", Some(c))])),
            None => path.to_owned(),
        };
        let page = ui.get(viewer, &page_path).await?;
        items.extend(page["items"].as_array().into_iter().flatten().cloned());
        cursor = page["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() || page["hasMore"] == false || items.len() >= LOOKUP_ITEMS {
            break;
        }
    }
    items.truncate(LOOKUP_ITEMS);
    Ok(items)
}

/// How far a picker's search reads a connector's lookup.
const LOOKUP_PAGES: usize = 5;
const LOOKUP_ITEMS: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_become_the_input() {
        let mut input = BTreeMap::from([("customerId".to_owned(), "old".to_owned())]);
        let picks = BTreeMap::from([
            ("customerId".to_owned(), "cus_1".to_owned()),
            ("billingMethod".to_owned(), MAP.to_owned()),
        ]);
        let dates = BTreeMap::from([("at".to_owned(), "2026-11-23T09:00".to_owned())]);
        let mapped = resolve(&mut input, &picks, &dates);
        assert_eq!(input["customerId"], "cus_1");
        assert_eq!(input["at"], "2026-11-23T09:00:00Z");
        assert!(mapped.contains("billingMethod"));
    }

    #[test]
    fn nouns_and_ids_match_lookups() {
        assert_eq!(noun_key("org-users"), "org_user");
        assert_eq!(noun_key("Customer"), "customer");
        assert_eq!(camel_id("org_user"), "orgUserId");
        assert_eq!(
            instant_for_input("2026-11-23T09:00:00.000Z").as_deref(),
            Some("2026-11-23T09:00")
        );
        assert_eq!(instant_for_input("{{trigger.at}}"), None);
    }

    #[test]
    fn a_flag_is_a_switch_that_keeps_an_unset_optional_unset() {
        let field = apps::Field {
            key: "billable".into(),
            label: "Billable".into(),
            help: None,
            required: false,
            kind: "boolean",
            choices: Vec::new(),
            lookup: None,
        };
        let pick = |value: &'static str| FieldPick {
            field: &field,
            format: None,
            connector: None,
            value,
            mapped: false,
        };
        let shown = |value| picker(&pick(value), &Records::new(), &[]);
        assert_eq!(
            shown(""),
            json!({"picker": "toggle", "on": false, "offValue": "", "mapMode": false})
        );
        assert_eq!(shown("true")["on"], true);
        assert_eq!(shown("false")["offValue"], "false");
        assert_eq!(shown("{{trigger.billable}}")["mapMode"], true);
        // The switch's `true` comes after the hidden "off" value, and wins.
        let mut input = BTreeMap::new();
        let picks = BTreeMap::from([("billable".to_owned(), "true".to_owned())]);
        resolve(&mut input, &picks, &BTreeMap::new());
        assert_eq!(input["billable"], "true");
    }
}
