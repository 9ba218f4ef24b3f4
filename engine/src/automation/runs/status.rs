//! Where a run and each of its steps stand, as stored in `runs.status` and in the steps' JSON
//! and shown by the API (the strings are part of the contract).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Where a run stands: waiting in the queue, held by a worker, or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    /// At a `delay`: no worker holds it; it is due again at its `next_attempt_at`.
    Waiting,
    Succeeded,
    Failed,
    /// A `filter` stopped it: not a failure.
    Filtered,
    Cancelled,
}

impl RunStatus {
    /// Every status, in the order a run goes through them.
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Running,
        Self::Waiting,
        Self::Succeeded,
        Self::Failed,
        Self::Filtered,
        Self::Cancelled,
    ];

    /// As stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Filtered => "filtered",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the run is over: nothing will execute it again (unless it is replayed).
    pub const fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Filtered | Self::Cancelled
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| Error::Internal(format!("unknown run status {text:?}")))
    }
}

/// Where one step of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Reached and not finished: an action between attempts, a loop part way, a delay waiting.
    Pending,
    Succeeded,
    Failed,
    /// Not executed: the branch it is in was not taken.
    Skipped,
    /// Failed, and the run went on past it (`onError: continue` or an error branch).
    Continued,
}

impl StepStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Succeeded,
        Self::Failed,
        Self::Skipped,
        Self::Continued,
    ];

    /// As stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Continued => "continued",
        }
    }

    /// Whether the node is done with: a resumed run does not execute it again.
    pub const fn is_settled(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepStatus {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| Error::Internal(format!("unknown step status {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_stored_and_serialized() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in StepStatus::ALL {
            assert_eq!(s.as_str().parse::<StepStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("done".parse::<RunStatus>().is_err());
    }
}
