//! kubectl-molecule: the commands behind `kubectl molecule ...` (see docs/plugin.md).

pub mod aws;
pub mod cli;
pub mod client;
pub mod commands;
pub mod complete;
pub mod cost;
pub mod display;
pub mod error;
pub mod lock;
pub mod open;
pub mod out;
pub mod password;
pub mod tenant;
