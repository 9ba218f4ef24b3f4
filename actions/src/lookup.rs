//! Lookups: one page of a remote list (Slack channels, HubSpot owners) read through a
//! connection, as `{value, label}` choices for a dropdown, searched by a term (sent to the API
//! when the connector names its parameter, matched here otherwise).

use serde_json::{Value, json};
use timix_engine::automation::connections::Resolved;
use timix_engine::automation::connectors::{Lookup, dig};

use crate::paging::{self, Page};
use crate::{ActionResult, Call, Caller, Performer, text_of};

/// What a dropdown asks for.
#[derive(Debug, Clone, Copy)]
pub struct LookupRequest<'a> {
    pub lookup: &'a Lookup,
    /// The search term (may be empty).
    pub q: &'a str,
    /// The caller's other parameters (`spreadsheetId`), seen by templates as `input`.
    pub input: &'a Value,
    /// From the previous page's `nextCursor`.
    pub cursor: Option<&'a str>,
}

/// One page of choices.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupPage {
    /// `{value, label}` each.
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

impl Performer {
    /// One page of a lookup through `connection`; a failure as its message.
    pub async fn lookup(
        &self,
        caller: Caller<'_>,
        connection: &Resolved,
        request: LookupRequest<'_>,
    ) -> Result<LookupPage, String> {
        let LookupRequest {
            lookup,
            q,
            input,
            cursor,
        } = request;
        let pagination = lookup.pagination.as_ref();
        let page = match cursor {
            Some(c) => {
                Page::from_cursor(c, pagination).ok_or("the cursor is not one this lookup gave")?
            }
            None => paging::first(pagination),
        };
        let data = json!({"q": q, "input": input, "next": page.as_template_value()});
        let mut call = Call::described(&lookup.request, &data)?;
        if let (Some(search), false) = (&lookup.search, q.is_empty()) {
            call.query.push((search.param.clone(), q.to_owned()));
        }
        paging::apply(pagination, &page, &mut call);
        let reply =
            self.call(caller, connection, &call)
                .await
                .map_err(|outcome| match outcome {
                    ActionResult::Retry { error, .. }
                    | ActionResult::Fail(error)
                    | ActionResult::Done(error) => text_of(&error["message"]),
                })?;
        if let Some(error) = crate::refusal(connection, &reply) {
            return Err(format!(
                "{} {} answered {}: {}",
                call.method,
                lookup.request.path,
                reply.status,
                text_of(&error["message"])
            ));
        }
        let empty = Vec::new();
        let list = match dig(&reply.body, &lookup.items) {
            Value::Null => &empty,
            other => other
                .as_array()
                .ok_or_else(|| format!("the answer has no list at {:?}", lookup.items))?,
        };
        let needle = q.to_lowercase();
        let local = lookup.search.is_none() && !needle.is_empty();
        let items = list
            .iter()
            .filter_map(|item| {
                let value = dig(item, &lookup.value);
                if value.is_null() {
                    return None;
                }
                let label = text_of(dig(item, &lookup.text));
                (!local || label.to_lowercase().contains(&needle))
                    .then(|| json!({"value": value, "label": label}))
            })
            .collect();
        let next_cursor =
            paging::next(pagination, &page, &reply, list.len()).and_then(|p| p.to_cursor());
        Ok(LookupPage { items, next_cursor })
    }
}
