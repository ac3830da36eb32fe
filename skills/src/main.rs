//! The `skillbridge` binary: the command line of the skillbridge library with the shipped skills linked in and
//! their states supplied.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: a bridged call allocates a few hundred small blocks across the
/// runtime's and the blocking pool's threads, where glibc's malloc costs more (in the benchmark, about 11% of the
/// bridge's CPU per call). Built without transparent huge pages, so idle memory stays about as small as with
/// glibc (9 MiB instead of 20 MiB with them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    skillbridge_skills::app().run()
}
