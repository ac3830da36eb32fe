//! What several test binaries of the shipped `skillbridge` need: free loopback addresses and a `serve` with its
//! admin endpoint up.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::Duration;

use skillbridge_doubles::CodexManagerDouble;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const WAIT: Duration = Duration::from_secs(30);

/// A loopback address nothing listens on (a port the system just handed out).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// `skillbridge serve` against `double` with the admin endpoint on `admin` guarded by `token`, and `flags`;
/// returns once it printed the endpoint's address (its sessions are open then).
pub async fn serve_with_admin(double: &CodexManagerDouble, admin: SocketAddr, token: &str, flags: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args([
            "serve",
            "--manager-url",
            &double.base_url(),
            "--admin",
            &admin.to_string(),
        ])
        .args(flags)
        .env("SKILLBRIDGE_ADMIN_TOKEN", token)
        .env_remove("SKILLBRIDGE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("serve starts");
        match line.unwrap() {
            Some(line) if line.starts_with("admin ") => return child,
            Some(_) => {}
            None => panic!("serve exited before it served"),
        }
    }
}
