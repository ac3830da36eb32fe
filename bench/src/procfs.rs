//! What the harness reads from `/proc`: a process's resident memory, CPU time, open descriptors and TCP sockets,
//! and the machine it runs on.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// A `VmXxx:` line of `/proc/PID/status`, in KiB (`VmRSS`, `VmHWM`, ..).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// CPU time (user + system, all threads) a process has used so far, in microseconds.
pub fn cpu_micros(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after the last `)` start at field 3 (state),
    // so utime (field 14) and stime (field 15) are the 12th and 13th of them.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / clock_ticks_per_second())
}

/// How many descriptors a process has open.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// How many TCP sockets a process holds whose remote port is `remote_port` (its connections to a server on this
/// machine), in any state: the inodes of its `socket:[..]` descriptors, looked up in its network namespace's
/// `/proc/PID/net/tcp` and `tcp6`.
pub fn tcp_sockets_to(pid: u32, remote_port: u16) -> Option<usize> {
    let inodes: HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| {
            let target = std::fs::read_link(entry.ok()?.path()).ok()?;
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let mut count = 0;
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        count += text
            .lines()
            .skip(1)
            .filter_map(tcp_row)
            .filter(|&(port, inode)| port == remote_port && inodes.contains(&inode))
            .count();
    }
    Some(count)
}

/// The remote port and the inode of a `/proc/net/tcp` row
/// (`sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ..`, addresses as `HEXIP:HEXPORT`).
fn tcp_row(line: &str) -> Option<(u16, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (_, port) = fields.get(2)?.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    Some((port, inode))
}

/// CPU time the whole machine has spent busy (every state but idle and iowait, all CPUs), in microseconds.
pub fn machine_busy_micros() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(busy * 1_000_000 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut values = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([values.next()??, values.next()??, values.next()??])
}

/// The machine a run was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs available to this process.
    pub nproc: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` from `/proc/meminfo`, in MiB.
    pub memory_mib: u64,
    /// `rustc --version`.
    pub rustc: String,
    /// The kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
}

impl Machine {
    /// Reads the machine's description; unknown parts are `"unknown"` (or 0).
    pub fn detect() -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|line| {
                line.strip_prefix("MemTotal:")?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib / 1024);
        let rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map_or_else(|| "unknown".into(), |v| v.trim().to_owned());
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory_mib,
            rustc,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        }
    }
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let rss = status_kib(pid, "VmRSS").expect("VmRSS");
        let hwm = status_kib(pid, "VmHWM").expect("VmHWM");
        assert!(rss > 0 && hwm >= rss, "rss {rss} hwm {hwm}");
        assert!(status_kib(pid, "NoSuchField").is_none());
        assert!(cpu_micros(pid).is_some());
        assert!(machine_busy_micros().is_some_and(|busy| busy > 0));
        assert!(open_fds(pid).is_some_and(|fds| fds >= 3));
    }

    #[test]
    fn counts_the_sockets_connected_to_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pid = std::process::id();
        let before = tcp_sockets_to(pid, port).unwrap();
        let connections: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        // The accepted ends have the port as their local port, not their remote one.
        let accepted: Vec<_> = (0..3).map(|_| listener.accept().unwrap()).collect();
        assert_eq!(tcp_sockets_to(pid, port), Some(before + 3));
        drop((connections, accepted));
    }

    #[test]
    fn reads_a_tcp_row() {
        let row = "   3: 0100007F:9C40 0100007F:0BB9 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 \
                   0000000000000000 20 4 30 10 -1";
        assert_eq!(tcp_row(row), Some((0x0BB9, 123_456)));
        assert_eq!(tcp_row("garbage"), None);
    }
}
