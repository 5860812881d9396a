//! A broadcast chat in the Endpoint + Session style: every message goes to every client.
//!
//! ```sh
//! cargo run -p sockeye --example chat_server              # ws://127.0.0.1:9001
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sockeye::{CloseInfo, Endpoint, Message, Session};

/// The connected clients, by address.
type Room = Arc<Mutex<HashMap<SocketAddr, Session>>>;

/// One client: its callbacks run on its session's task.
struct Member {
    room: Room,
    peer: SocketAddr,
}

impl Endpoint for Member {
    fn on_open(&mut self, session: &Session) {
        self.room.lock().unwrap().insert(self.peer, session.clone());
        println!("{} joined", self.peer);
    }

    fn on_message(&mut self, _session: &Session, message: Message) {
        // Callbacks must not block: `try_send` queues without waiting, and refuses when a
        // slow client's buffer is full.
        for (peer, member) in self.room.lock().unwrap().iter() {
            if let Err(error) = member.try_send(message.clone()) {
                println!("not delivered to {peer}: {error}");
            }
        }
    }

    fn on_close(&mut self, _session: &Session, info: &CloseInfo) {
        self.room.lock().unwrap().remove(&self.peer);
        println!("{} left: {info}", self.peer);
    }
}

#[tokio::main]
async fn main() -> sockeye::Result<()> {
    let addr = std::env::args().nth(1);
    let server = sockeye::Server::bind(addr.as_deref().unwrap_or("127.0.0.1:9001")).await?;
    println!("chat server on ws://{}", server.local_addr()?);

    let shutdown = server.shutdown_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.shutdown();
    });

    let room = Room::default();
    server
        .serve_endpoints(move |peer| Member {
            room: room.clone(),
            peer,
        })
        .await
}
