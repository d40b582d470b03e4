//! The command line's work: each `rewind` subcommand as a library function
//! ([`commands`]) and the `rewind bench` timing harness ([`bench`]).

pub mod bench;
pub mod commands;
