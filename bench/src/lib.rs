//! The harness shared by the benchmark binaries (`skillbridge-bench`, `skillbridge-faults`, `skillbridge-cluster`):
//! the processes they run (`process`), what they read from `/proc` (`procfs`), the codex-manager double and its test
//! controls (`double`), the clients under test (`clients`), their `/metrics` (`metrics`) and skill runs (`runs`), and
//! what they judge and print (`check`, `table`), and medians of repeated measurements (`stats`).

pub mod check;
pub mod clients;
pub mod double;
pub mod metrics;
pub mod process;
pub mod procfs;
pub mod runs;
pub mod stats;
pub mod table;
