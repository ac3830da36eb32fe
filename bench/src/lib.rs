//! The harness shared by the benchmark binaries (`skillbridge-bench`, `skillbridge-faults`): the processes they run
//! (`process`), what they read from `/proc` (`procfs`), the codex-manager double and its test controls (`double`),
//! and the clients under test (`clients`).

pub mod clients;
pub mod double;
pub mod process;
pub mod procfs;
