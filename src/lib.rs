//! tmctl: a native orchestrator for the Tagmarshal pace-of-play lakehouse.
//!
//! The data flows `config → dag → executor → tasks`, with `store` the only module that speaks SQL.
//! `ARCHITECTURE.md` at the repository root is the code map.
#![forbid(unsafe_code)]

pub mod backfill;
pub mod bench;
pub mod cli;
pub mod config;
pub mod dag;
pub mod executor;
pub mod logcapture;
pub mod store;
pub mod tasks;
pub mod timefmt;
