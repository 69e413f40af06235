//! Embedding the chat in a program: an in-process server on loopback and two clients.
//!
//! Run: `cargo run -p chat-server --example embed`

use chat_core::{Chat, Event, UserName};
use chat_server::client::{ClientConfig, connect};
use chat_server::server::{Server, ServerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A server on a free loopback port, without a persistent log.
    let config = ServerConfig { listen: "127.0.0.1:0".parse()?, data_dir: None, ..ServerConfig::default() };
    let server = Server::bind(config).await?;
    let addr = server.local_addr()?.to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    // Two users. `Chat` is the same API in both topologies.
    let mut alice = Chat::new(connect(ClientConfig::new(addr.clone(), UserName::new("alice")?)).await?);
    let mut bob = Chat::new(connect(ClientConfig::new(addr, UserName::new("bob")?)).await?);
    alice.broadcast("hello, everyone").await?;
    alice.send_to(UserName::new("bob")?, "and hello to you, bob").await?;

    // bob sees both messages, in the server's order, with increasing Lamport stamps.
    let mut seen = 0;
    while seen < 2 {
        match bob.next_event().await {
            Some(Event::Message(m)) => {
                println!("bob got [{}] (lamport {}): {}", m.sender, m.lamport.counter, m.body);
                seen += 1;
            }
            Some(other) => println!("bob saw {other:?}"),
            None => break,
        }
    }
    alice.leave().await?;
    bob.leave().await?;
    let _ = stop.send(());
    running.await??;
    Ok(())
}
