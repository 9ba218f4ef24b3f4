//! Reading a remote list page by page, in the styles connectors describe: a cursor token in the
//! answer, page numbers, offsets, or the `Link` header's next URL (RFC 8288).

use serde_json::Value;
use timix_engine::automation::connectors::{Pagination, dig};

use crate::{Call, Reply, text_of};

/// Which page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    First,
    /// A cursor token from the last answer.
    Token(String),
    Number(u64),
    Offset(u64),
    /// The next page's URL, from a `Link` header.
    Url(String),
}

impl Page {
    /// What templates see as `next` (the token, number or offset); none on the first page.
    pub fn as_template_value(&self) -> Value {
        match self {
            Page::First | Page::Url(_) => Value::Null,
            Page::Token(t) => Value::String(t.clone()),
            Page::Number(n) | Page::Offset(n) => Value::from(*n),
        }
    }

    /// As a lookup's `nextCursor`: the page, written so that [`Page::from_cursor`] reads it.
    pub fn to_cursor(&self) -> Option<String> {
        match self {
            Page::First => None,
            Page::Token(t) => Some(format!("c:{t}")),
            Page::Number(n) => Some(format!("p:{n}")),
            Page::Offset(n) => Some(format!("o:{n}")),
            Page::Url(u) => Some(format!("u:{u}")),
        }
    }

    /// A page given back as a cursor, if it is one `pagination` makes.
    pub fn from_cursor(cursor: &str, pagination: Option<&Pagination>) -> Option<Page> {
        let (kind, rest) = cursor.split_once(':')?;
        let page = match kind {
            "c" => Page::Token(rest.to_owned()),
            "p" => Page::Number(rest.parse().ok()?),
            "o" => Page::Offset(rest.parse().ok()?),
            "u" => Page::Url(rest.to_owned()),
            _ => return None,
        };
        let fits = matches!(
            (&page, pagination?),
            (Page::Token(_), Pagination::Cursor { .. })
                | (Page::Number(_), Pagination::Page { .. })
                | (Page::Offset(_), Pagination::Offset { .. })
                | (Page::Url(_), Pagination::Link)
        );
        fits.then_some(page)
    }
}

/// The page to start with.
pub fn first(pagination: Option<&Pagination>) -> Page {
    match pagination {
        Some(Pagination::Page { start, .. }) => Page::Number(start.unwrap_or(1)),
        Some(Pagination::Offset { .. }) => Page::Offset(0),
        _ => Page::First,
    }
}

/// Puts the page in a request: its parameter, or (a `Link` URL) the target itself.
pub fn apply(pagination: Option<&Pagination>, page: &Page, call: &mut Call) {
    let param = match pagination {
        Some(Pagination::Cursor { param, .. }) => param.clone(),
        Some(Pagination::Page { param, .. } | Pagination::Offset { param }) => Some(param.clone()),
        _ => None,
    };
    match page {
        Page::First => {}
        Page::Url(url) => {
            // The next URL carries the whole query: what was added for the first page goes.
            call.target = url.clone();
            call.query.clear();
        }
        other => {
            if let Some(param) = param {
                call.query.retain(|(k, _)| *k != param);
                call.query
                    .push((param, text_of(&other.as_template_value())));
            }
        }
    }
}

/// The page after `page`, given its answer and how many items it held; none when it was the
/// last.
pub fn next(
    pagination: Option<&Pagination>,
    page: &Page,
    reply: &Reply,
    read: usize,
) -> Option<Page> {
    match pagination? {
        Pagination::Cursor { field, more, .. } => {
            if let Some(more) = more
                && dig(&reply.body, more) == &Value::Bool(false)
            {
                return None;
            }
            let token = dig(&reply.body, field);
            let token = match token {
                Value::Null => return None,
                Value::String(s) if s.is_empty() => return None,
                other => text_of(other),
            };
            // A cursor that does not move would read the same page for ever. (An empty page
            // with a new cursor is not the last: Slack answers such pages.)
            (Page::Token(token.clone()) != *page).then_some(Page::Token(token))
        }
        Pagination::Page { .. } => match page {
            Page::Number(n) if read > 0 => n.checked_add(1).map(Page::Number),
            _ => None,
        },
        Pagination::Offset { .. } => match page {
            Page::Offset(n) if read > 0 => n.checked_add(read as u64).map(Page::Offset),
            _ => None,
        },
        Pagination::Link => reply.header("link").and_then(next_link).map(Page::Url),
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reply(body: Value, link: Option<&str>) -> Reply {
        Reply {
            status: 200,
            retry_after: None,
            headers: link
                .map(|l| vec![("link".to_owned(), l.to_owned())])
                .unwrap_or_default(),
            body,
        }
    }

    #[test]
    fn each_style_finds_the_next_page_and_the_last() {
        let cursor = Pagination::Cursor {
            param: Some("after".into()),
            field: "paging.next.after".into(),
            more: None,
        };
        let answer = reply(json!({"paging": {"next": {"after": "20"}}}), None);
        assert_eq!(
            next(Some(&cursor), &Page::First, &answer, 10),
            Some(Page::Token("20".into()))
        );
        assert_eq!(
            next(Some(&cursor), &Page::First, &reply(json!({}), None), 10),
            None
        );
        let stripe = Pagination::Cursor {
            param: Some("starting_after".into()),
            field: "data.-1.id".into(),
            more: Some("has_more".into()),
        };
        let last = reply(json!({"data": [{"id": "pi_2"}], "has_more": false}), None);
        assert_eq!(next(Some(&stripe), &Page::First, &last, 1), None);
        let more = reply(json!({"data": [{"id": "pi_2"}], "has_more": true}), None);
        assert_eq!(
            next(Some(&stripe), &Page::First, &more, 1),
            Some(Page::Token("pi_2".into()))
        );
        let pages = Pagination::Page {
            param: "page".into(),
            start: None,
        };
        assert_eq!(first(Some(&pages)), Page::Number(1));
        assert_eq!(
            next(Some(&pages), &Page::Number(1), &answer, 3),
            Some(Page::Number(2))
        );
        assert_eq!(next(Some(&pages), &Page::Number(2), &answer, 0), None);
        let offsets = Pagination::Offset {
            param: "offset".into(),
        };
        assert_eq!(
            next(Some(&offsets), &Page::Offset(0), &answer, 50),
            Some(Page::Offset(50))
        );
        let link = reply(
            json!([]),
            Some(
                "<https://api.example.com/x?page=3>; rel=\"next\", <https://api.example.com/x?page=9>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next(Some(&Pagination::Link), &Page::First, &link, 30),
            Some(Page::Url("https://api.example.com/x?page=3".into()))
        );
        let mut call = Call {
            query: vec![("per_page".into(), "30".into())],
            ..Call::default()
        };
        apply(
            Some(&Pagination::Link),
            &Page::Url("https://api.example.com/x?page=3".into()),
            &mut call,
        );
        assert!(call.query.is_empty());
        for (page, style) in [
            (Page::Token("a:b".into()), &cursor),
            (Page::Number(4), &pages),
            (Page::Offset(8), &offsets),
            (Page::Url("https://x/y?z=1".into()), &Pagination::Link),
        ] {
            let given = page.to_cursor().unwrap();
            assert_eq!(Page::from_cursor(&given, Some(style)), Some(page));
            assert_eq!(Page::from_cursor(&given, None), None, "no pages, no cursor");
        }
        assert_eq!(
            Page::from_cursor("u:https://elsewhere/", Some(&cursor)),
            None,
            "only the kind its pagination makes"
        );
        assert_eq!(
            next(Some(&pages), &Page::Number(u64::MAX), &answer, 3),
            None
        );
    }
}
