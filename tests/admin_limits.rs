//! The admin endpoint's server against hostile neighbours, over real sockets on 127.0.0.1: thousands of idle
//! connections leave `/healthz` up and the server at its connection cap; connections that send no request in time
//! are closed; failing `accept`s (no descriptors left) are logged once, backed off and survived.
//!
//! Two tests run this test binary itself as a child process (`child_admin` below, which only acts when its
//! environment variable is set): one so that the server's descriptors can be counted from outside, in
//! `/proc/<pid>/fd`, the other so that its lowered descriptor limit touches no other test.
//!
//! These use real sockets, so they stay on the real clock: a timeout is checked from below exactly (a timer never
//! fires early) and from above with seconds of slack; every other wait is a fail-safe far from what is expected.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skillbridge::admin::{self, AdminState, AdminToken, HEADER_READ_TIMEOUT, KEEP_ALIVE_TIMEOUT, MAX_CONNECTIONS};
use skillbridge::skill;
use skillbridge::skill::Catalog;
use skillbridge::telemetry::{BridgeHealth, BridgeStats};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Fail-safe for waits on events.
const WAIT: Duration = Duration::from_secs(20);
/// How late past its due time a timeout may close a connection and still pass.
const SLACK: Duration = Duration::from_secs(5);
/// Selects what the self-run child does (`serve` or `accept-failures`).
const CHILD_ENV: &str = "SKILLBRIDGE_TEST_ADMIN_CHILD";
/// How many idle connections the neighbour holds.
const IDLE_CONNECTIONS: usize = 2000;
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n";
const TOKEN: &str = "limits-token";

static HOLD_STARTED: Notify = Notify::const_new();
static HOLD_RELEASE: Notify = Notify::const_new();

/// Runs until the test releases it.
#[skill]
async fn hold() -> String {
    HOLD_STARTED.notify_one();
    HOLD_RELEASE.notified().await;
    "released".into()
}

/// An admin endpoint served in this process.
struct Admin {
    addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
}

impl Admin {
    async fn start() -> Self {
        let state = AdminState::new(
            Catalog::from_registry().unwrap(),
            Arc::new(BridgeStats::new()),
            Arc::new(BridgeHealth::new()),
            AdminToken::new(TOKEN),
        );
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let (addr, server) = admin::bind("127.0.0.1:0".parse().unwrap(), state, shutdown)
            .await
            .unwrap();
        Self {
            addr,
            stop,
            server: tokio::spawn(server),
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

/// `GET /healthz` on a new connection closed after the response; returns the response's status line.
async fn healthz(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    Ok(response.lines().next().unwrap_or_default().to_owned())
}

/// Reads one response from a kept-alive connection; returns its status line.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.expect("a response");
        head.push(byte);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a content-length");
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    head.lines().next().unwrap().to_owned()
}

/// Waits (fail-safe: `WAIT`) until the server closes `stream`; fails if it sends anything first.
async fn closed(stream: &mut TcpStream) {
    let mut buf = [0; 256];
    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => panic!(
            "expected the connection closed, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(_) => panic!("the connection was not closed within {WAIT:?}"),
    }
}

fn assert_closed_after(what: &str, took: Duration, due: Duration) {
    assert!(
        took >= due && took < due + SLACK,
        "{what}: closed after {took:?}, due after {due:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_no_request_in_time_are_closed() {
    let admin = Admin::start().await;
    let addr = admin.addr;

    let silent = async {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        closed(&mut stream).await;
        started.elapsed()
    };
    // Header bytes trickling in do not extend the deadline.
    let trickling = async {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0; 256];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => {
                    assert!(!matches!(read, Ok(n) if n > 0), "expected the connection closed");
                    break;
                }
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    // Fails once the server has closed; the read above then says so.
                    let _ = stream.write_all(b"X-Slow: 1\r\n").await;
                }
            }
            assert!(started.elapsed() < WAIT, "the trickling connection was not closed");
        }
        started.elapsed()
    };
    // After a response, the connection may idle for the keep-alive timeout, not more.
    let idle_after_response = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let idle_from = Instant::now();
        stream.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut stream).await, "HTTP/1.1 200 OK");
        closed(&mut stream).await;
        idle_from.elapsed()
    };
    // Idling longer than the header timeout between requests is fine...
    let second_request_after_a_pause = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut stream).await, "HTTP/1.1 200 OK");
        tokio::time::sleep(HEADER_READ_TIMEOUT + Duration::from_secs(1)).await;
        stream.write_all(HEALTHZ).await.unwrap();
        read_response(&mut stream).await
    };
    // ...but once a later request has started, its headers are due within the header timeout.
    let later_request_trickling = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut stream).await, "HTTP/1.1 200 OK");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        stream.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        closed(&mut stream).await;
        started.elapsed()
    };

    let (silent, trickling, idle, second, later) = tokio::join!(
        silent,
        trickling,
        idle_after_response,
        second_request_after_a_pause,
        later_request_trickling
    );
    assert_closed_after("sent nothing", silent, HEADER_READ_TIMEOUT);
    assert_closed_after("trickled its headers", trickling, HEADER_READ_TIMEOUT);
    assert_closed_after("idle after a response", idle, KEEP_ALIVE_TIMEOUT);
    assert_eq!(
        second, "HTTP/1.1 200 OK",
        "a request after a pause on a kept-alive connection"
    );
    assert_closed_after("trickled a later request's headers", later, HEADER_READ_TIMEOUT);
    assert_eq!(healthz(addr).await.unwrap(), "HTTP/1.1 200 OK");
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_finishes_requests_in_flight() {
    let admin = Admin::start().await;
    let addr = admin.addr;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut kept_alive = TcpStream::connect(addr).await.unwrap();
    kept_alive.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut kept_alive).await, "HTTP/1.1 200 OK");
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    let invoke = format!(
        "POST /skills/hold/invoke HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    in_flight.write_all(invoke.as_bytes()).await.unwrap();
    tokio::time::timeout(WAIT, HOLD_STARTED.notified())
        .await
        .expect("the skill runs");

    let stopping = Instant::now();
    let stopped = tokio::spawn(admin.stop());
    // Idle ones are closed at once, not at their timeouts...
    closed(&mut silent).await;
    closed(&mut kept_alive).await;
    assert!(stopping.elapsed() < HEADER_READ_TIMEOUT, "{:?}", stopping.elapsed());
    assert!(!stopped.is_finished(), "a request is still in flight");
    // ...the one in flight is answered, then closed.
    HOLD_RELEASE.notify_one();
    assert_eq!(read_response(&mut in_flight).await, "HTTP/1.1 200 OK");
    closed(&mut in_flight).await;
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("the server stops")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting");
}

/// The descriptor limit of this process: (soft, hard).
fn fd_limit() -> (libc::rlim_t, libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    (limit.rlim_cur, limit.rlim_max)
}

fn set_soft_fd_limit(soft: libc::rlim_t) {
    let (_, hard) = fd_limit();
    let limit = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct it is given.
    let result = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(result, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

/// How many sockets process `pid` has open.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:")))
        .count()
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn child(mode: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_admin", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_leave_healthz_up_and_the_server_at_its_cap() {
    // This process holds the idle connections: it needs that many descriptors.
    let (soft, hard) = fd_limit();
    let needed = IDLE_CONNECTIONS as libc::rlim_t + 256;
    if hard < needed {
        eprintln!("skipped: the descriptor limit's hard maximum is {hard}, this test needs {needed}");
        return;
    }
    if soft < needed {
        set_soft_fd_limit(hard.min(1 << 20));
    }

    let mut server = child("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id().unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let addr: SocketAddr = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // The test harness has already written `test child_admin ... ` on the same line.
            if let Some((_, addr)) = line.rsplit_once("admin-addr ") {
                return addr.trim().parse().unwrap();
            }
        }
        panic!("the child exited without printing its address");
    })
    .await
    .expect("the child prints its address");
    // Its listener and the runtime's own.
    let at_rest = sockets(pid);

    // The cap, and one connection accepted and waiting for room.
    let ceiling = at_rest + MAX_CONNECTIONS + 1;
    let mut most = 0;
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    let opening = Instant::now();
    let mut slowest = Duration::ZERO;
    for n in 0..IDLE_CONNECTIONS {
        let connecting = Instant::now();
        idle.push(TcpStream::connect(addr).await.unwrap());
        slowest = slowest.max(connecting.elapsed());
        if n % 50 == 0 {
            most = most.max(sockets(pid));
        }
    }
    let opened = opening.elapsed();

    // A new connection is admitted (the longest-waiting idle one is closed for it) and answered at once.
    let asked = Instant::now();
    let mut probe = TcpStream::connect(addr).await.unwrap();
    probe.write_all(HEALTHZ).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(2), read_response(&mut probe))
        .await
        .expect("/healthz answers within 2 s");
    let answered = asked.elapsed();
    assert_eq!(status, "HTTP/1.1 200 OK");
    most = most.max(sockets(pid));
    assert!(
        most <= ceiling,
        "the server had {most} sockets open, at most {ceiling} expected"
    );

    // It holds its cap (the probe and the newest idle connections)...
    eventually("the server to hold its cap of connections", || {
        let open = sockets(pid);
        assert!(
            open <= ceiling,
            "the server has {open} sockets open, at most {ceiling} expected"
        );
        open == at_rest + MAX_CONNECTIONS
    })
    .await;
    // ...until the idle ones have sent nothing for the header timeout.
    let timing_out = Instant::now();
    drop(probe);
    eventually("the idle connections to be closed", || sockets(pid) == at_rest).await;
    assert!(timing_out.elapsed() < HEADER_READ_TIMEOUT + SLACK);
    eprintln!(
        "{IDLE_CONNECTIONS} connections opened in {opened:?} (the slowest in {slowest:?}), /healthz answered in \
         {answered:?}, at most {} connections open in the server",
        most - at_rest
    );

    drop(idle);
    drop(server.stdin.take());
    let exit = tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("the child stops")
        .unwrap();
    assert!(exit.success(), "{exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_accepts_are_logged_once_backed_off_and_survived() {
    let output = tokio::time::timeout(WAIT, child("accept-failures").output())
        .await
        .expect("the child finishes")
        .unwrap();
    assert!(
        output.status.success(),
        "the child failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The child's part: does nothing unless the test above started this binary with `CHILD_ENV` set.
#[test]
fn child_admin() {
    let Ok(mode) = std::env::var(CHILD_ENV) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match mode.as_str() {
        "serve" => runtime.block_on(child_serve()),
        "accept-failures" => runtime.block_on(child_accept_failures()),
        other => panic!("unknown child mode {other:?}"),
    }
}

/// Serves until stdin closes.
async fn child_serve() {
    let admin = Admin::start().await;
    println!("admin-addr {}", admin.addr);
    std::io::stdout().flush().unwrap();
    let mut stdin = tokio::io::stdin();
    let mut buf = [0; 64];
    while stdin.read(&mut buf).await.unwrap() > 0 {}
    admin.stop().await;
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn count(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).matches(text).count()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const FIRST_FAILURE: &str = "accepting a connection failed";
const LATER_FAILURE: &str = "accept failed again";
const RECOVERED: &str = "accepting connections again";

/// With every descriptor in use, a connection that arrives cannot be accepted: the server warns once, retries
/// with backoff, and serves again once descriptors are free.
async fn child_accept_failures() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("skillbridge=debug")
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    set_soft_fd_limit(256);
    let admin = Admin::start().await;
    assert_eq!(healthz(admin.addr).await.unwrap(), "HTTP/1.1 200 OK");

    // Use up every descriptor...
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => fillers.push(file),
            Err(error) if error.raw_os_error() == Some(libc::EMFILE) => break,
            Err(error) => panic!("{error}"),
        }
        assert!(fillers.len() < 256, "the limit of 256 descriptors did not hold");
    }
    // ...but one, for a client: its connection is made in the kernel, and the server cannot accept it.
    fillers.pop();
    let client = TcpStream::connect(admin.addr).await.unwrap();
    let failing = Instant::now();
    eventually("failed accepts to be retried", || logs.count(LATER_FAILURE) >= 3).await;
    let (first, later) = (logs.count(FIRST_FAILURE), logs.count(LATER_FAILURE));
    assert_eq!(first, 1, "one warning for the burst");
    assert!(later < 10, "{later} retries in {:?}: no backoff?", failing.elapsed());
    assert!(logs.count("Too many open files") >= 1);

    // Descriptors free again: the server accepts again, and answers.
    drop(fillers);
    drop(client);
    eventually("accepting to recover", || logs.count(RECOVERED) == 1).await;
    assert_eq!(healthz(admin.addr).await.unwrap(), "HTTP/1.1 200 OK");
    assert_eq!(logs.count(FIRST_FAILURE), 1);
    admin.stop().await;
}
