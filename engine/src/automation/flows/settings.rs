//! A flow's settings: the time zone its schedule is read in, how many of its runs may execute at
//! once and start per minute, and after how many failed runs in a row it is disabled.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Problems;
use crate::store::json;

/// Failed runs in a row after which a flow is disabled, unless its settings say otherwise.
pub const DEFAULT_DISABLE_AFTER_FAILURES: u32 = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// An IANA time zone (`Europe/Berlin`) its schedule is read in; null: the organization's.
    pub timezone: Option<String>,
    /// Runs of this flow executing at once; the others wait in order. Null: no limit.
    pub max_concurrency: Option<u32>,
    /// Runs of this flow started per minute; more wait in the queue, none is dropped.
    pub max_runs_per_minute: Option<u32>,
    /// Failed runs in a row after which the flow is disabled (0: never).
    pub disable_after_failures: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timezone: None,
            max_concurrency: None,
            max_runs_per_minute: None,
            disable_after_failures: DEFAULT_DISABLE_AFTER_FAILURES,
        }
    }
}

impl Settings {
    /// As stored (missing fields take their defaults).
    pub fn from_stored(text: &str) -> Settings {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// `value` laid over `current`: a field given replaces the current one (null resets it).
    pub fn apply(p: &mut Problems, value: &Value, current: &Settings) -> Option<Settings> {
        let Some(object) = value.as_object() else {
            p.add(
                "settings",
                "invalid",
                "settings is an object: {timezone, maxConcurrency, maxRunsPerMinute, disableAfterFailures}",
            );
            return None;
        };
        let before = p.len();
        let mut next = current.clone();
        for (field, v) in object {
            let at = format!("settings.{}", json::shorten(field));
            let count = |p: &mut Problems, max: u64, min: u64| match v {
                Value::Null => Some(None),
                other => match other.as_u64() {
                    Some(n) if (min..=max).contains(&n) => Some(Some(n as u32)),
                    _ => {
                        p.add(
                            &at,
                            "invalid",
                            format!("{field} is a whole number from {min} to {max}, or null"),
                        );
                        None
                    }
                },
            };
            match field.as_str() {
                "timezone" => match v {
                    Value::Null => next.timezone = None,
                    Value::String(zone) if zone.parse::<chrono_tz::Tz>().is_ok() => {
                        next.timezone = Some(zone.clone())
                    }
                    _ => p.add(
                        &at,
                        "invalid",
                        format!(
                            "{} is not a time zone; give an IANA name such as Europe/Berlin",
                            json::quote(&v.as_str().map_or(v.to_string(), str::to_owned))
                        ),
                    ),
                },
                "maxConcurrency" => {
                    if let Some(n) = count(p, 1_000, 1) {
                        next.max_concurrency = n;
                    }
                }
                "maxRunsPerMinute" => {
                    if let Some(n) = count(p, 100_000, 1) {
                        next.max_runs_per_minute = n;
                    }
                }
                "disableAfterFailures" => {
                    if let Some(n) = count(p, 10_000, 0) {
                        next.disable_after_failures = n.unwrap_or(DEFAULT_DISABLE_AFTER_FAILURES);
                    }
                }
                _ => p.add(
                    &at,
                    "unknown_field",
                    format!("{} is not a setting of a flow", json::shorten(field)),
                ),
            }
        }
        (p.len() == before).then_some(next)
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}
