//! The schedule editor of schedule and poll flows: every N minutes, daily, Monday to Friday or
//! monthly at a time, or a cron expression, turned into the cron text the API stores; and the
//! next five fire times, shown in the organization's time zone.
//!
//! The API stores the cron as written and has no zone in the trigger: a schedule trigger is read
//! in the flow's `settings.timezone`, else the organization's (so "daily at 09:00" is `0 9 * * *`
//! and fires at 09:00 local time, winter and summer), while a poll trigger is read in UTC. The
//! preview computes fire times the way the scheduler does ([`fire_times`]).

use axum::Json;
use axum::extract::Query;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};
use timix_engine::automation::flows::{fire_times, parse_schedule};
use timix_engine::store::clock::now_ms;

use super::session::Fields;
use super::{UiResult, Viewer};

/// The steps offered for "every N minutes": divisors of 60, so the gaps stay even across hours.
const MINUTE_STEPS: [u32; 12] = [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60];

/// How many fire times the preview lists.
const PREVIEW_COUNT: usize = 5;

/// Windows searched for fire times, growing, so a frequent schedule costs little and a rare one
/// (a 31st of the month) is still found.
const WINDOWS_MS: [i64; 5] = [
    2 * 3_600_000,
    3 * 86_400_000,
    70 * 86_400_000,
    800 * 86_400_000,
    3_000 * 86_400_000,
];

/// The editor's fields as a form or the preview's query sends them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Editor {
    /// `minutes`, `daily`, `weekdays`, `monthly` or `cron`.
    #[serde(rename = "schedule.kind", default)]
    pub kind: String,
    #[serde(rename = "schedule.every", default)]
    pub every: String,
    /// `HH:MM`.
    #[serde(rename = "schedule.time", default)]
    pub time: String,
    /// Day of the month, 1–31.
    #[serde(rename = "schedule.day", default)]
    pub day: String,
    #[serde(rename = "schedule.cron", default)]
    pub cron: String,
}

const KINDS: [(&str, &str); 5] = [
    ("minutes", "Every few minutes"),
    ("daily", "Every day at a time"),
    ("weekdays", "Monday to Friday at a time"),
    ("monthly", "Every month on a day, at a time"),
    ("cron", "A cron expression"),
];

impl Editor {
    /// The cron text the API stores for these fields; `Err` says which field is wrong.
    pub fn to_cron(&self) -> Result<String, String> {
        let at = || {
            parse_time(&self.time).ok_or_else(|| format!("{:?} is not a time (HH:MM)", self.time))
        };
        match self.kind.as_str() {
            "minutes" => match self.every.trim().parse::<u32>() {
                Ok(1) => Ok("* * * * *".into()),
                Ok(60) => Ok("0 * * * *".into()),
                Ok(n) if MINUTE_STEPS.contains(&n) => Ok(format!("*/{n} * * * *")),
                _ => Err(format!(
                    "every {:?} minutes: choose one of {MINUTE_STEPS:?}",
                    self.every
                )),
            },
            "daily" => at().map(|(h, m)| format!("{m} {h} * * *")),
            "weekdays" => at().map(|(h, m)| format!("{m} {h} * * 1-5")),
            "monthly" => {
                let (h, m) = at()?;
                match self.day.trim().parse::<u32>() {
                    Ok(day @ 1..=31) => Ok(format!("{m} {h} {day} * *")),
                    _ => Err(format!("{:?} is not a day of the month (1–31)", self.day)),
                }
            }
            _ => Ok(self.cron.trim().to_owned()),
        }
    }

    /// The fields that write `cron`: one of the simple kinds when it is one, else `cron`.
    /// Nothing yet is "every day at 09:00".
    pub fn from_cron(cron: &str) -> Editor {
        let cron = cron.trim();
        let mut editor = Editor {
            kind: "cron".into(),
            every: "15".into(),
            time: "09:00".into(),
            day: "1".into(),
            cron: cron.to_owned(),
        };
        let fields: Vec<&str> = cron.split_whitespace().collect();
        let time = |m: &str, h: &str| -> Option<String> {
            let (h, m) = (plain(h, 23)?, plain(m, 59)?);
            Some(format!("{h:02}:{m:02}"))
        };
        let simple = match fields.as_slice() {
            [] => Some(("daily", None, None)),
            ["*", "*", "*", "*", "*"] => Some(("minutes", Some("1".to_owned()), None)),
            ["0", "*", "*", "*", "*"] => Some(("minutes", Some("60".to_owned()), None)),
            [m, "*", "*", "*", "*"] => m
                .strip_prefix("*/")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| MINUTE_STEPS.contains(n))
                .map(|n| ("minutes", Some(n.to_string()), None)),
            [m, h, "*", "*", "*"] => time(m, h).map(|t| ("daily", None, Some(t))),
            [m, h, "*", "*", days]
                if matches!(days.to_ascii_uppercase().as_str(), "1-5" | "MON-FRI") =>
            {
                time(m, h).map(|t| ("weekdays", None, Some(t)))
            }
            [m, h, d, "*", "*"] => {
                time(m, h)
                    .zip(plain(d, 31).filter(|d| *d >= 1))
                    .map(|(t, d)| {
                        editor.day = d.to_string();
                        ("monthly", None, Some(t))
                    })
            }
            _ => None,
        };
        if let Some((kind, every, time)) = simple {
            editor.kind = kind.into();
            editor.every = every.unwrap_or(editor.every);
            editor.time = time.unwrap_or(editor.time);
        }
        if editor.cron.is_empty() {
            editor.cron = editor.to_cron().unwrap_or_default();
        }
        editor
    }
}

/// A number written plainly (`9`, `09`) up to `max`.
fn plain(text: &str, max: u32) -> Option<u32> {
    (!text.is_empty() && text.len() <= 2 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
        .filter(|n| *n <= max)
}

/// `09:30`, `9:30` or `09:30:00` → `(9, 30)`.
fn parse_time(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split(':');
    let hour = plain(parts.next()?, 23)?;
    let minute = plain(parts.next()?, 59)?;
    match parts.next() {
        None | Some("00") => Some((hour, minute)),
        Some(_) => None,
    }
}

/// The schedule a flow form sends through the editor, as the cron text to store; `None` when
/// the form has no editor (another trigger). Fields the editor cannot read become the reason,
/// which the API refuses at `trigger.schedule`.
pub fn from_fields(fields: &Fields) -> Option<String> {
    let kind = fields.get("schedule.kind")?;
    let editor = Editor {
        kind: kind.to_owned(),
        every: fields.text("schedule.every"),
        time: fields.text("schedule.time"),
        day: fields.text("schedule.day"),
        cron: fields.text("schedule.cron"),
    };
    // The reason is not a cron expression either: the API quotes it in its refusal.
    Some(editor.to_cron().unwrap_or_else(|reason| reason))
}

/// The instants (ms) of the next `count` fire times after `from_ms` of `cron` read in `zone`.
pub fn next_fires(cron: &str, zone: Tz, from_ms: i64, count: usize) -> Result<Vec<i64>, String> {
    if cron.trim().is_empty() {
        return Err("give a schedule".into());
    }
    let schedule = parse_schedule(cron)?;
    let mut fires = Vec::new();
    for window in WINDOWS_MS {
        fires = fire_times(&schedule, zone, from_ms, from_ms + window);
        if fires.len() >= count {
            break;
        }
    }
    fires.truncate(count);
    Ok(fires)
}

/// `Mon 2026-12-07 09:00 EST`: a fire time as the organization reads it.
pub fn fire_label(ms: i64, zone: Tz) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&zone)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

/// The zones of a preview: the one the cron is read in, and the one times are shown in.
#[derive(Debug, Clone, Copy)]
pub struct Zones {
    pub read_in: Tz,
    pub shown_in: Tz,
}

impl Zones {
    /// A schedule trigger is read in the flow's own zone, else the organization's; a poll
    /// trigger in UTC. Times are shown in the organization's zone.
    pub fn for_flow(viewer: &Viewer, flow: Option<&Value>, is_poll: bool) -> Zones {
        let shown_in = organization_zone(viewer);
        let read_in = if is_poll {
            Tz::UTC
        } else {
            flow.and_then(|f| f["settings"]["timezone"].as_str())
                .and_then(|z| z.parse().ok())
                .unwrap_or(shown_in)
        };
        Zones { read_in, shown_in }
    }
}

/// The viewer's organization's time zone (UTC when it names none this build knows).
pub fn organization_zone(viewer: &Viewer) -> Tz {
    viewer
        .actor
        .organization
        .timezone
        .parse()
        .unwrap_or(Tz::UTC)
}

/// The stored cron, its next fire times (or why there are none), as the editor shows them.
pub fn preview(cron: &str, zones: Zones, from_ms: i64) -> Value {
    let (fires, error) = match next_fires(cron, zones.read_in, from_ms, PREVIEW_COUNT) {
        Ok(fires) => (fires, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let fires: Vec<Value> = fires
        .into_iter()
        .map(|ms| {
            json!({
                "at": timix_engine::store::clock::format_ms(ms),
                "label": fire_label(ms, zones.shown_in),
            })
        })
        .collect();
    json!({
        "cron": cron,
        "fires": fires,
        "error": error,
        "never": error.is_none() && fires.is_empty(),
    })
}

/// The editor partial's context for a flow whose schedule is `cron`.
pub fn editor_context(cron: &str, zones: Zones) -> Value {
    let editor = Editor::from_cron(cron);
    let kinds: Vec<Value> = KINDS
        .iter()
        .map(|(value, label)| json!({"value": value, "label": label, "selected": editor.kind == *value}))
        .collect();
    let steps: Vec<Value> = MINUTE_STEPS
        .iter()
        .map(|n| json!({"value": n, "selected": editor.every == n.to_string()}))
        .collect();
    let kind = editor.kind.as_str();
    let show = json!({
        "minutes": kind == "minutes",
        "monthly": kind == "monthly",
        "time": matches!(kind, "daily" | "weekdays" | "monthly"),
        "cron": kind == "cron",
    });
    json!({
        "kind": editor.kind,
        "kinds": kinds,
        "steps": steps,
        "time": editor.time,
        "day": editor.day,
        "cron": editor.cron,
        "show": show,
        "readIn": zones.read_in.name(),
        "shownIn": zones.shown_in.name(),
        "zonesDiffer": zones.read_in != zones.shown_in,
        "preview": preview(&editor.cron, zones, now_ms()),
    })
}

/// The editor's context on the flow builder, for a flow (saved or not) with `trigger` (`schedule`
/// or `poll`) and the cron text `schedule`.
pub fn for_builder(viewer: &Viewer, flow: Option<&Value>, trigger: &str, schedule: &str) -> Value {
    editor_context(schedule, Zones::for_flow(viewer, flow, trigger == "poll"))
}

/// The preview's query: the editor's fields and the zone the cron is read in.
#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    #[serde(flatten)]
    editor: Editor,
    #[serde(rename = "readIn", default)]
    read_in: String,
}

/// `GET /ui/schedule-preview?schedule.kind=daily&schedule.time=09:00&readIn=…`: the cron the
/// fields make and its next five fire times, for the editor's script to refresh as one types.
pub async fn preview_json(
    viewer: Viewer,
    Query(query): Query<PreviewQuery>,
) -> UiResult<Json<Value>> {
    let shown_in = organization_zone(&viewer);
    let zones = Zones {
        read_in: query.read_in.parse().unwrap_or(shown_in),
        shown_in,
    };
    Ok(Json(match query.editor.to_cron() {
        Ok(cron) => preview(&cron, zones, now_ms()),
        Err(error) => json!({"cron": null, "fires": [], "error": error, "never": false}),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor(kind: &str, every: &str, time: &str, day: &str, cron: &str) -> Editor {
        Editor {
            kind: kind.into(),
            every: every.into(),
            time: time.into(),
            day: day.into(),
            cron: cron.into(),
        }
    }

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    fn utc(ms: &[i64]) -> Vec<String> {
        ms.iter()
            .map(|ms| timix_engine::store::clock::format_ms(*ms))
            .collect()
    }

    #[test]
    fn each_kind_writes_its_cron_and_reads_back_from_it() {
        let cases = [
            (editor("minutes", "15", "", "", ""), "*/15 * * * *"),
            (editor("minutes", "1", "", "", ""), "* * * * *"),
            (editor("minutes", "60", "", "", ""), "0 * * * *"),
            (editor("daily", "", "09:05", "", ""), "5 9 * * *"),
            (editor("weekdays", "", "17:30", "", ""), "30 17 * * 1-5"),
            (editor("monthly", "", "00:00", "31", ""), "0 0 31 * *"),
            (editor("cron", "", "", "", " 0 8 * * 1 "), "0 8 * * 1"),
        ];
        for (fields, cron) in cases {
            assert_eq!(fields.to_cron().as_deref(), Ok(cron), "{fields:?}");
            let back = Editor::from_cron(cron);
            assert_eq!(back.kind, fields.kind, "{cron}");
            assert_eq!(back.to_cron().as_deref(), Ok(cron), "{cron}");
        }
        assert_eq!(Editor::from_cron("30 17 * * MON-FRI").kind, "weekdays");
        assert_eq!(Editor::from_cron("0 9 * * *").time, "09:00");
        // Nothing yet: every day at 09:00.
        let empty = Editor::from_cron("");
        assert_eq!(
            (empty.kind.as_str(), empty.cron.as_str()),
            ("daily", "0 9 * * *")
        );
        // What the simple kinds cannot say stays a cron expression.
        for cron in [
            "*/7 * * * *",
            "0 9 1 1 *",
            "0 */2 * * *",
            "0 9 * * 6",
            "0 0 9 * * *",
        ] {
            assert_eq!(Editor::from_cron(cron).kind, "cron", "{cron}");
        }
    }

    #[test]
    fn fields_that_do_not_fit_are_refused_with_the_reason() {
        assert!(
            editor("daily", "", "25:00", "", "")
                .to_cron()
                .unwrap_err()
                .contains("time")
        );
        assert!(
            editor("monthly", "", "09:00", "32", "")
                .to_cron()
                .unwrap_err()
                .contains("day")
        );
        assert!(editor("minutes", "7", "", "", "").to_cron().is_err());
        assert_eq!(parse_time("9:30"), Some((9, 30)));
        assert_eq!(parse_time("09:30:00"), Some((9, 30)));
        assert_eq!(parse_time("9am"), None);
        // The flow form passes what it cannot read on, for the API to refuse at its field.
        let form = Fields(vec![
            ("schedule.kind".into(), "daily".into()),
            ("schedule.time".into(), "9am".into()),
        ]);
        assert!(parse_schedule(&from_fields(&form).unwrap()).is_err());
        let form = Fields(vec![
            ("schedule.kind".into(), "weekdays".into()),
            ("schedule.time".into(), "08:15".into()),
            ("schedule.cron".into(), "ignored".into()),
        ]);
        assert_eq!(from_fields(&form).as_deref(), Some("15 8 * * 1-5"));
        assert_eq!(from_fields(&Fields(vec![])), None);
    }

    #[test]
    fn the_next_five_fire_times_keep_local_time_across_daylight_saving() {
        let new_york: Tz = "America/New_York".parse().unwrap();
        // Daily at 09:00 New York over the spring-forward night (2027-03-14): 14:00 UTC in
        // winter (EST), 13:00 UTC from that day on (EDT).
        let fires = next_fires("0 9 * * *", new_york, at("2027-03-12T15:00:00Z"), 5).unwrap();
        assert_eq!(
            utc(&fires),
            [
                "2027-03-13T14:00:00.000Z",
                "2027-03-14T13:00:00.000Z",
                "2027-03-15T13:00:00.000Z",
                "2027-03-16T13:00:00.000Z",
                "2027-03-17T13:00:00.000Z",
            ]
        );
        assert_eq!(fire_label(fires[0], new_york), "Sat 2027-03-13 09:00 EST");
        assert_eq!(fire_label(fires[1], new_york), "Sun 2027-03-14 09:00 EDT");
        // 02:30 does not happen that night: it fires once, at 03:00 EDT.
        let fires = next_fires("30 2 * * *", new_york, at("2027-03-13T12:00:00Z"), 2).unwrap();
        assert_eq!(
            fires
                .iter()
                .map(|ms| fire_label(*ms, new_york))
                .collect::<Vec<_>>(),
            ["Sun 2027-03-14 03:00 EDT", "Mon 2027-03-15 02:30 EDT"]
        );
        // A poll's cron is read in UTC and shown in the organization's zone.
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        let zones = Zones {
            read_in: Tz::UTC,
            shown_in: kolkata,
        };
        let shown = preview("0 9 * * *", zones, at("2027-03-12T15:00:00Z"));
        assert_eq!(shown["fires"][0]["label"], "Sat 2027-03-13 14:30 IST");
        assert_eq!(shown["fires"][0]["at"], "2027-03-13T09:00:00.000Z");
    }

    #[test]
    fn rare_and_impossible_schedules_are_found_or_said_to_never_fire() {
        let utc_zone = Tz::UTC;
        let fires = next_fires("0 0 31 * *", utc_zone, at("2027-01-01T00:00:00Z"), 5).unwrap();
        assert_eq!(
            utc(&fires),
            [
                "2027-01-31T00:00:00.000Z",
                "2027-03-31T00:00:00.000Z",
                "2027-05-31T00:00:00.000Z",
                "2027-07-31T00:00:00.000Z",
                "2027-08-31T00:00:00.000Z",
            ]
        );
        assert_eq!(next_fires("*/5 * * * *", utc_zone, 0, 5).unwrap().len(), 5);
        let zones = Zones {
            read_in: utc_zone,
            shown_in: utc_zone,
        };
        assert_eq!(preview("0 0 30 2 *", zones, 0)["never"], true);
        assert!(
            preview("every tuesday", zones, 0)["error"]
                .as_str()
                .unwrap()
                .contains("not a cron expression")
        );
    }
}
