//! Results an operator can read: a terminal table, JSON, plots and a
//! Markdown report.

pub mod markdown;
pub mod plots;
pub mod table;
