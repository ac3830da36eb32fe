//! The `skillbridge` binary: the command line of the skillbridge library with the shipped skills linked in.

use std::process::ExitCode;

fn main() -> ExitCode {
    skillbridge_skills::link();
    skillbridge::cli::main()
}
