//! Lists: pages by cursor visit every row once, in the asked order; deleted rows leave the list
//! unless asked for.

use timix_engine::access::auth::Actor;
use timix_engine::billing::customers::{Customer, Customers};
use timix_engine::store::clock::{format_ms, now_ms};
use timix_engine::store::db::Db;
use timix_engine::store::list::{Item, ListParams, Page};
use timix_engine::store::resource::{self, Resource};

use crate::support;

async fn page(db: &Db, actor: &Actor, params: &[(&str, &str)]) -> Page<Customer> {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let params = ListParams::parse(&Customers::LIST, &params).unwrap();
    resource::list::<Customers>(db, actor, &params)
        .await
        .unwrap()
}

fn live_names(page: &Page<Customer>) -> Vec<String> {
    page.items
        .iter()
        .filter_map(|i| match i {
            Item::Live(c) => Some(c.name.clone()),
            Item::Deleted(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn cursor_pages_visit_every_row_once_in_order() {
    let db = support::db().await;
    let actor = support::owner(&db, "Lists").await;
    let names = ["Delta", "Alpha", "Echo", "Charlie", "Bravo"];
    for name in names {
        support::customer(&db, &actor, name).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut params = vec![("limit", "2"), ("sort", "name")];
        if let Some(c) = &cursor {
            params.push(("cursor", c.as_str()));
        }
        let page = page(&db, &actor, &params).await;
        assert_eq!(page.total_count, 5);
        assert!(page.items.len() <= 2);
        seen.extend(live_names(&page));
        assert_eq!(page.has_more, page.next_cursor.is_some());
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the cursor never ran out");
    assert_eq!(seen, ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]);

    // Descending, by page number this time.
    let first = page(
        &db,
        &actor,
        &[("page", "1"), ("limit", "3"), ("sort", "-name")],
    )
    .await;
    assert_eq!(live_names(&first), ["Echo", "Delta", "Charlie"]);
    assert!(first.has_more);
    let second = page(
        &db,
        &actor,
        &[("page", "2"), ("limit", "3"), ("sort", "-name")],
    )
    .await;
    assert_eq!(live_names(&second), ["Bravo", "Alpha"]);
    assert!(!second.has_more);
}

#[tokio::test]
async fn bad_list_parameters_are_refused() {
    let params = |p: &[(&str, &str)]| {
        let p: Vec<(String, String)> = p
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ListParams::parse(&Customers::LIST, &p)
    };
    assert!(params(&[("limit", "0")]).is_err());
    assert!(params(&[("page", "x")]).is_err());
    assert!(params(&[("cursor", "not a cursor")]).is_err());
    assert!(params(&[("customer_id", "x")]).is_err());
    assert!(params(&[("limit", "2"), ("sort", "name")]).is_ok());
}

#[tokio::test]
async fn deleted_rows_leave_the_list_unless_asked_for() {
    let db = support::db().await;
    let actor = support::owner(&db, "Deletes").await;
    support::customer(&db, &actor, "Kept").await;
    let gone = support::customer(&db, &actor, "Gone").await;
    resource::delete::<Customers>(&db, &actor, &gone.id)
        .await
        .unwrap();
    let live = page(&db, &actor, &[]).await;
    assert_eq!(live_names(&live), ["Kept"]);
    assert_eq!(live.total_count, 1);
    let since = format_ms(now_ms() - 3_600_000);
    let all = page(
        &db,
        &actor,
        &[("includeDeleted", "true"), ("updatedSince", &since)],
    )
    .await;
    let tombstones: Vec<&str> = all
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Deleted(t) => Some(t.id.as_str()),
            Item::Live(_) => None,
        })
        .collect();
    assert_eq!(tombstones, [gone.id.as_str()]);
    assert_eq!(live_names(&all), ["Kept"]);
}
