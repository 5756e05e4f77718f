//! tmctl: a native orchestrator for the Tagmarshal pace-of-play lakehouse.
//!
//! The data flows `config → dag → executor → tasks`, with `store` the only module that speaks SQL.
//! `ARCHITECTURE.md` at the repository root is the code map.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod backfill;
#[cfg(feature = "bench")]
pub mod bench;
pub mod bronze;
pub mod cli;
pub mod config;
pub mod courses;
pub mod daemon;
pub mod dag;
pub mod demo;
pub mod doctor;
pub mod executor;
pub mod freshness;
pub mod generate;
pub mod gold;
pub mod lake;
pub mod landing;
pub mod logcapture;
pub mod metrics;
pub mod ops;
pub mod query;
pub mod secrets;
pub mod silver;
pub mod slots;
pub mod store;
pub mod tasks;
pub mod timefmt;
pub mod util;
pub mod web;
