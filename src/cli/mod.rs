//! Client-side commands of the `executions` binary: they talk to a running server through
//! the generated gRPC client, like any other caller.

pub mod connection;
pub mod demo;
pub mod examples;
pub mod watch;
