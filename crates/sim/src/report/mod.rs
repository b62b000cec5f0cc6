//! Results an operator can read: a terminal table, JSON, plots and a
//! Markdown report.

pub mod plots;
pub mod table;
