//! SeaORM entities, one file per table.

pub mod action;
pub mod execution;
