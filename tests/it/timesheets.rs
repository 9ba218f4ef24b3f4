//! Timesheets: an approved week totals its time against the user's capacity, less holidays.

use crate::money;

#[tokio::test]
async fn approved_weeks_total_time_against_capacity_and_holidays() {
    let b = money::logged().await;
    let sheets = money::approve_week_one(&b).await;
    let sheet_figures: Vec<(i64, i64, i64)> = sheets
        .iter()
        .map(|s| {
            (
                s["totalSeconds"].as_i64().unwrap(),
                s["billableSeconds"].as_i64().unwrap(),
                s["expectedSeconds"].as_i64().unwrap(),
            )
        })
        .collect();
    // Owner: E1 E4 E5 E8 E9 E10, 40 h expected. Member: E2 E3 E6 E7 E11, 32 h over four of
    // five working days (2 November is a company day).
    assert_eq!(
        sheet_figures,
        vec![(53400, 39000, 144000), (40500, 40500, 92160)]
    );
}
