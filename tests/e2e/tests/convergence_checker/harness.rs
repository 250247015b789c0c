//! The real `soledad-server` binary (the workspace's harness) on loopback, and
//! a loopback TCP proxy in front of it that can SIGKILL it after a number of bytes,
//! or hold one direction of the traffic.

#[path = "../../common/device.rs"]
mod device;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use soledad_client::Soledad;
use soledad_server::testing::ServerFiles;
use soledad_testkit::{Killer, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const UUID: &str = "checker-user";

/// Longest a proxy holds traffic, so that no test can hang on a forgotten hold.
const MAX_HOLD: Duration = Duration::from_secs(120);

/// The server binary (the workspace's harness) with one user, `UUID`.
pub struct Server {
    pub process: ServerProcess,
    pub token: String,
}

impl Server {
    /// Starts the binary with the user added.
    pub async fn start() -> Server {
        let process = ServerProcess::builder().user(UUID).start();
        Server {
            token: process.token(UUID).to_owned(),
            process,
        }
    }

    /// Starts the process on the same data and port (after a kill).
    pub async fn serve(&self) {
        assert!(!self.is_alive(), "already serving");
        self.process.restart();
    }

    pub fn is_alive(&self) -> bool {
        self.process.is_running()
    }

    /// SIGKILLs the process if it runs.
    pub fn kill(&self) {
        self.process.kill();
    }

    pub fn cert(&self) -> PathBuf {
        self.process.cert()
    }

    /// Documents committed in the user's server store (0 before it exists or
    /// while it cannot be read).
    pub fn committed_docs(&self) -> i64 {
        ServerFiles::at(self.process.data_path())
            .doc_count(UUID)
            .map_or(0, |count| i64::try_from(count).unwrap())
    }
}

/// Opens a device of `UUID` (its own directory) through `url`.
pub async fn device(home: &Path, url: &str, cert: &Path, token: &str) -> Soledad {
    device::open_device(UUID, home, url, cert, token).await
}

/// Shared knobs of the proxy.
#[derive(Default)]
pub struct Knobs {
    /// Bytes forwarded so far, both directions.
    pub forwarded: AtomicU64,
    /// Bytes forwarded client → server so far.
    pub uploaded: AtomicU64,
    /// Kill the server once `forwarded` reaches this (0 = disarmed).
    pub kill_at: AtomicU64,
    /// Stop forwarding client → server once `uploaded` reaches this (0 = off).
    pub hold_upload_at: AtomicU64,
    /// Stop forwarding server → client once `uploaded` reaches this (0 = off).
    pub hold_download_at: AtomicU64,
    /// Kills made by the proxy.
    pub kills: AtomicU64,
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub knobs: Arc<Knobs>,
}

impl Proxy {
    /// Forwards loopback connections to `server`'s port.
    pub async fn start(server: &Server) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            knobs: Arc::new(Knobs::default()),
        };
        let knobs = proxy.knobs.clone();
        let victim = server.process.killer();
        let to = server.process.users_addr();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (knobs, victim) = (knobs.clone(), victim.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    let upload = pump(ri, wo, &knobs, &victim, true);
                    let download = pump(ro, wi, &knobs, &victim, false);
                    tokio::select! { _ = upload => {}, _ = download => {} }
                });
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// Kills the server after `bytes` more forwarded bytes.
    pub fn arm_kill(&self, bytes: u64) {
        let at = self.knobs.forwarded.load(Ordering::SeqCst) + bytes.max(1);
        self.knobs.kill_at.store(at, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.knobs.kill_at.store(0, Ordering::SeqCst);
    }

    pub fn forwarded(&self) -> u64 {
        self.knobs.forwarded.load(Ordering::SeqCst)
    }

    pub fn kills(&self) -> u64 {
        self.knobs.kills.load(Ordering::SeqCst)
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    knobs: &Knobs,
    victim: &Killer,
    upload: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let held = |knobs: &Knobs| {
        let at = if upload {
            knobs.hold_upload_at.load(Ordering::SeqCst)
        } else {
            knobs.hold_download_at.load(Ordering::SeqCst)
        };
        at != 0 && knobs.uploaded.load(Ordering::SeqCst) >= at
    };
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Hold what was read (checked after reading, so a hold set while this pump
        // waited still applies to the next bytes).
        let held_since = Instant::now();
        while held_since.elapsed() < MAX_HOLD && held(knobs) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // When armed, forward only up to the kill point, then kill: the other side
        // sees the stream cut exactly there.
        let before = knobs.forwarded.fetch_add(n as u64, Ordering::SeqCst);
        let at = knobs.kill_at.load(Ordering::SeqCst);
        let cut = at != 0
            && before + n as u64 >= at
            && knobs
                .kill_at
                .compare_exchange(at, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        let pass = if cut {
            usize::try_from(at.saturating_sub(before)).unwrap().min(n)
        } else {
            n
        };
        if to.write_all(&buf[..pass]).await.is_err() {
            break;
        }
        if upload {
            knobs.uploaded.fetch_add(pass as u64, Ordering::SeqCst);
        }
        if cut {
            if victim.kill() {
                knobs.kills.fetch_add(1, Ordering::SeqCst);
            }
            break;
        }
    }
}
