//! [`RedisServer`]: a real `redis-server` (Debian's, which `.ci/run` installs) on a free loopback port with a
//! temporary directory, for tests of several bridges sharing work. It keeps its data in an append-only file in that
//! directory, as a production Redis would, so that [`restart`](RedisServer::restart) keeps it; it is stopped (and
//! its directory removed) when dropped, and never touches a system instance.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long a starting server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server` of the test's own.
#[derive(Debug)]
pub struct RedisServer {
    addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` (or `$REDIS_SERVER`) on a free loopback port, and returns once it answers `PING`.
    pub async fn start() -> io::Result<RedisServer> {
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let dir = std::env::temp_dir().join(format!("skillbridge-redis-{}-{}", std::process::id(), addr.port()));
        std::fs::create_dir_all(&dir)?;
        let child = spawn(addr, &dir)?;
        let server = RedisServer { addr, child, dir };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> io::Result<()> {
        tokio::time::timeout(START_TIMEOUT, self.wait_for_pong())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "redis-server did not answer PING in time"))
    }

    /// Stops the server (`SHUTDOWN`: it writes its data and exits, closing every connection); [`resume`](Self::resume)
    /// starts it again.
    pub async fn stop(&mut self) -> io::Result<()> {
        let mut socket = TcpStream::connect(self.addr).await?;
        socket.write_all(b"SHUTDOWN\r\n").await?;
        tokio::time::timeout(START_TIMEOUT, self.child.wait())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "redis-server did not shut down in time"))??;
        Ok(())
    }

    /// Starts a [stopped](Self::stop) server again on the same port with the same data; returns once it answers
    /// `PING`.
    pub async fn resume(&mut self) -> io::Result<()> {
        self.child = spawn(self.addr, &self.dir)?;
        self.wait_ready().await
    }

    /// [`stop`](Self::stop), `down` later [`resume`](Self::resume).
    pub async fn restart(&mut self, down: Duration) -> io::Result<()> {
        self.stop().await?;
        tokio::time::sleep(down).await;
        self.resume().await
    }
}

fn spawn(addr: SocketAddr, dir: &std::path::Path) -> io::Result<Child> {
    let program = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    Command::new(&program)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &addr.port().to_string(),
            "--save",
            "",
            "--appendonly",
            "yes",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot start {program} ({error}); on Debian: apt-get install redis-server (.ci/run does it)"),
            )
        })
}

impl RedisServer {
    async fn wait_for_pong(&self) {
        loop {
            if let Ok(mut socket) = TcpStream::connect(self.addr).await {
                let mut answer = [0u8; 7];
                if socket.write_all(b"PING\r\n").await.is_ok()
                    && socket.read_exact(&mut answer).await.is_ok()
                    && &answer == b"+PONG\r\n"
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
