//! A TCP proxy between browsers and the gateway that can stall a connection without closing it
//! (a network that died: both ends still think the socket is open) and cut one outright. Chromium's
//! own offline emulation does not touch open WebSockets, so the tests break the network here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One proxied connection: stalled while `stalled` is true; gone once its pumps end.
struct Link {
    id: usize,
    stalled: watch::Sender<bool>,
    pumps: [JoinHandle<()>; 2],
}

impl Link {
    fn open(&self) -> bool {
        !self.pumps.iter().all(JoinHandle::is_finished)
    }
}

pub struct Proxy {
    address: SocketAddr,
    down: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<Mutex<Vec<Link>>>,
    accepted: Arc<AtomicUsize>,
    acceptor: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.pumps.iter().for_each(JoinHandle::abort);
        }
    }
}

impl Proxy {
    /// Listens on a free port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let links = Arc::new(Mutex::new(Vec::<Link>::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (list, count, is_down) = (links.clone(), accepted.clone(), down.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if is_down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (stalled, watching) = watch::channel(false);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let pumps = [
                    tokio::spawn(pump(client_read, server_write, watching.clone())),
                    tokio::spawn(pump(server_read, client_write, watching)),
                ];
                let id = count.fetch_add(1, Ordering::SeqCst);
                let mut list = list.lock().unwrap();
                list.retain(Link::open);
                list.push(Link { id, stalled, pumps });
            }
        });
        Self { address, down, links, accepted, acceptor }
    }

    /// Takes the network down (every connection cut, new ones closed at once) or back up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            for link in self.links.lock().unwrap().iter() {
                link.pumps.iter().for_each(JoinHandle::abort);
            }
        }
    }

    /// Refuses new connections (closed at once, as a network that is down) or accepts them again,
    /// leaving the open ones as they are: a reconnect then waits for the test, not for a race.
    pub fn set_refusing(&self, refusing: bool) {
        self.down.store(refusing, Ordering::SeqCst);
    }

    /// The page `gateway` serves, connecting through this proxy, with a keep-alive after
    /// `keep_alive` seconds of sending nothing and `timeout` seconds to wait for any answer.
    pub fn page_url(&self, gateway: &chat_local_gateway::Running, keep_alive: u32, timeout: u32) -> String {
        let url = self.url("dev").replace(':', "%3A").replace('/', "%2F");
        format!("{}?url={url}&keepAlive={keep_alive}&timeout={timeout}", gateway.page_url().unwrap())
    }

    /// `ws://{proxy}/{stage}`.
    pub fn url(&self, stage: &str) -> String {
        format!("ws://{}/{stage}", self.address)
    }

    /// The ids of the connections open through the proxy and not stalled.
    pub fn flowing(&self) -> Vec<usize> {
        let links = self.links.lock().unwrap();
        links.iter().filter(|link| link.open() && !*link.stalled.borrow()).map(|link| link.id).collect()
    }

    /// How many connections the proxy has accepted in all.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops forwarding a connection's bytes both ways without closing it.
    pub fn stall(&self, id: usize) {
        if let Some(link) = self.links.lock().unwrap().iter().find(|link| link.id == id) {
            link.stalled.send_replace(true);
        }
    }

    /// Cuts every connection that is stalled (so the gateway sees them close, as a TCP timeout
    /// would end them in the end).
    pub fn cut_stalled(&self) -> usize {
        let links = self.links.lock().unwrap();
        let stalled: Vec<_> = links.iter().filter(|link| link.open() && *link.stalled.borrow()).collect();
        stalled.iter().for_each(|link| link.pumps.iter().for_each(JoinHandle::abort));
        stalled.len()
    }
}

/// Copies bytes from `from` to `to` while not stalled; a stalled pump reads nothing more, so the
/// sender's buffers fill as on a dead network.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if *stalled.borrow_and_update() {
            if stalled.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if to.write_all(&buffer[..n]).await.is_err() { return },
            },
            _ = stalled.changed() => {}
        }
    }
}
