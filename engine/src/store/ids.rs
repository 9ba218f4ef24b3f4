//! Resource identifiers: a short type prefix and a ULID, so ids sort by creation and say what
//! they name (`cus_01J…`, `evt_01J…`).

/// A new identifier with the given prefix, e.g. `new_id("cus")` → `cus_01JD…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::generate())
}

pub const ORGANIZATION: &str = "org";
pub const USER: &str = "usr";
pub const API_KEY: &str = "key";
pub const CUSTOMER: &str = "cus";
pub const PROJECT: &str = "prj";
pub const TASK: &str = "tsk";
pub const SUBTASK: &str = "sub";
pub const EVENT: &str = "evt";
pub const TIME_ENTRY: &str = "te";
pub const TIMESHEET: &str = "ts";
pub const INVOICE: &str = "inv";
pub const INVOICE_LINE: &str = "inl";
pub const PAYMENT: &str = "pay";
pub const HOLIDAY_PROFILE: &str = "hol";
pub const FLOW: &str = "flw";
pub const RUN: &str = "run";
pub const SAMPLE: &str = "smp";
pub const CONNECTION: &str = "con";
