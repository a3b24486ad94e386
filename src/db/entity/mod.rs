//! SeaORM entities, one file per table.

pub mod action;
pub mod event;
pub mod execution;
pub mod stop_job;
pub mod stop_subscription;
