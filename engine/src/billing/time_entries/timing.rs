//! The when of an entry: its date, start, end and duration checked against each other.

use super::{MAX_DURATION_SECONDS, TimeEntryInput};
use crate::error::{FieldError, Problems};
use crate::store::clock::{
    Millis, date_in_zone, format_date, parse_date_field, parse_instant_field,
};
use crate::store::patch::Patch;

/// The when of an entry after checks: the date and the instants, consistent with each other.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Timing {
    pub(super) date: String,
    pub(super) started_at: Option<Millis>,
    pub(super) ended_at: Option<Millis>,
    pub(super) duration_seconds: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Current {
    pub(super) timing: Timing,
    pub(super) is_running: bool,
    pub(super) billable_requested: bool,
    pub(super) notes: Option<String>,
    pub(super) external_id: Option<String>,
}

/// Checks the time fields of `input` against the entry's `current` ones (none on create).
pub(super) fn timing(
    p: &mut Problems,
    input: &mut TimeEntryInput,
    current: Option<&Current>,
    zone: &str,
) -> Option<Timing> {
    let running = current.is_some_and(|c| c.is_running);
    let instant =
        |p: &mut Problems, field: &str, patch: Patch<String>, old: Option<Millis>| match patch {
            Patch::Absent => Some(old),
            Patch::Null => Some(None),
            Patch::Value(text) => p.take(parse_instant_field(field, &text)).map(Some),
        };
    let old = current.map(|c| &c.timing);
    let ended_patched = !input.ended_at.is_absent();
    let started = instant(
        p,
        "startedAt",
        std::mem::take(&mut input.started_at),
        old.and_then(|t| t.started_at),
    )?;
    let ended = instant(
        p,
        "endedAt",
        std::mem::take(&mut input.ended_at),
        old.and_then(|t| t.ended_at),
    )?;
    let duration_patch = match std::mem::take(&mut input.duration_seconds) {
        // Out of range: said once here, and kept out of the arithmetic below.
        Patch::Value(d) if !(0..=MAX_DURATION_SECONDS).contains(&d) => {
            p.add(
                "durationSeconds",
                "invalid",
                format!("durationSeconds must be from 1 to {MAX_DURATION_SECONDS} (24 hours)"),
            );
            Patch::Value(-1)
        }
        other => other,
    };
    if running && (ended_patched || !duration_patch.is_absent()) {
        p.add(
            "endedAt",
            "timer_running",
            "the timer is running: stop it before setting endedAt or durationSeconds",
        );
        return None;
    }
    let (ended, duration) = if running {
        (None, 0)
    } else {
        match (duration_patch, started, ended) {
            (Patch::Null, ..) => {
                p.add(
                    "durationSeconds",
                    "required",
                    "durationSeconds cannot be null",
                );
                return None;
            }
            (Patch::Value(d), Some(s), Some(e)) if ended_patched => {
                if e - s != d * 1000 {
                    p.add(
                        "durationSeconds",
                        "inconsistent",
                        "durationSeconds must equal endedAt minus startedAt",
                    );
                    return None;
                }
                (Some(e), d)
            }
            // A new duration with a start moves the end.
            (Patch::Value(d), Some(s), _) => (Some(s + d * 1000), d),
            (Patch::Value(_), None, Some(_)) => {
                p.add("startedAt", "required", "endedAt needs startedAt");
                return None;
            }
            (Patch::Value(d), None, None) => (None, d),
            (Patch::Absent, Some(s), Some(e)) => {
                // Untouched instants keep their duration (a timer stopped within a second).
                let kept = old
                    .filter(|t| t.started_at == Some(s) && t.ended_at == Some(e))
                    .map(|t| t.duration_seconds);
                if e <= s && kept.is_none() {
                    p.add("endedAt", "invalid", "endedAt must be after startedAt");
                    return None;
                }
                (Some(e), kept.unwrap_or((e - s) / 1000))
            }
            (Patch::Absent, Some(s), None) => match old.map(|t| t.duration_seconds) {
                Some(d) => (Some(s + d * 1000), d),
                None => {
                    p.add(
                        "durationSeconds",
                        "required",
                        "give durationSeconds or endedAt with startedAt",
                    );
                    return None;
                }
            },
            (Patch::Absent, None, Some(_)) => {
                p.add("startedAt", "required", "endedAt needs startedAt");
                return None;
            }
            (Patch::Absent, None, None) => match old.map(|t| t.duration_seconds) {
                Some(d) => (None, d),
                None => {
                    p.add(
                        "durationSeconds",
                        "required",
                        "give durationSeconds, or startedAt and endedAt",
                    );
                    return None;
                }
            },
        }
    };
    // A stopped timer may be shorter than a second; time logged by hand may not.
    let duration_ok = running
        || (1..=MAX_DURATION_SECONDS).contains(&duration)
        || duration == old.map_or(-1, |t| t.duration_seconds);
    if !duration_ok {
        p.add(
            "durationSeconds",
            "invalid",
            format!("durationSeconds must be from 1 to {MAX_DURATION_SECONDS} (24 hours)"),
        );
    }
    let date = match std::mem::take(&mut input.date) {
        Patch::Value(text) => p.take(parse_date_field("date", &text))?,
        Patch::Null => {
            p.add("date", "required", "date cannot be null");
            return None;
        }
        Patch::Absent => match (old, started) {
            (Some(t), _) => t.date.clone(),
            (None, Some(s)) => format_date(date_in_zone(s, zone)),
            (None, None) => {
                p.push(FieldError::required("date"));
                return None;
            }
        },
    };
    duration_ok.then_some(Timing {
        date,
        started_at: started,
        ended_at: ended,
        duration_seconds: duration,
    })
}
