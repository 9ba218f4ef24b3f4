//! The time-tracking and billing domain: customers → projects → tasks → subtasks, time entries
//! (timing, pricing, timers), timesheets, budgets, invoices and their PDFs, financial reports,
//! holiday profiles.

pub mod budgets;
pub mod customers;
pub mod holiday_profiles;
pub mod invoice_pdf;
pub mod invoices;
pub mod projects;
pub mod reports;
pub mod subtasks;
pub mod tasks;
pub mod time_entries;
pub mod timesheets;
