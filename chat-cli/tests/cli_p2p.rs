//! Cross-process tests of `--mode p2p`: real `chat-cli` processes discover each other by multicast
//! on 127.0.0.1 (a test-unique port), chat, and survive the coordinator being killed with SIGKILL.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Proc;

/// The multicast group of this test file: loopback only, a port no other test uses.
const GROUP: &str = "239.255.77.77:47701";

fn spawn(name: &str) -> Proc {
    let args =
        ["--mode", "p2p", "--json", "--name", name, "--group", GROUP, "--heartbeat-ms", "50", "--timeout-ms", "300"];
    common::spawn(name, &args)
}

/// P2P-specific queries.
trait P2pProc {
    fn peers(&mut self) -> Vec<(String, bool)>;
    fn last_coordinator(&self) -> Option<String>;
}

impl P2pProc for Proc {
    /// The member list as (name, coordinator) pairs, sorted.
    fn peers(&mut self) -> Vec<(String, bool)> {
        self.say("/peers");
        let peers = self.event_of("peers");
        let mut list: Vec<(String, bool)> = peers["peers"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|p| (p["name"].as_str().unwrap_or("").to_string(), p["coordinator"].as_bool().unwrap_or(false)))
            .collect();
        list.sort();
        list
    }

    /// The name of the last coordinator announced by a `coordinator` event.
    fn last_coordinator(&self) -> Option<String> {
        self.seen.iter().rev().find(|e| e["type"] == "coordinator").and_then(|e| e["name"].as_str()).map(String::from)
    }
}

/// Polls `/peers` until every process lists exactly `names` with the same single coordinator.
fn wait_agreed(procs: &mut [&mut Proc], names: &[&str]) -> String {
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort();
    for _ in 0..100 {
        let mut coordinators = Vec::new();
        let mut ok = true;
        for p in procs.iter_mut() {
            let peers = p.peers();
            let listed: Vec<&str> = peers.iter().map(|(n, _)| n.as_str()).collect();
            let coord: Vec<&String> = peers.iter().filter(|(_, c)| *c).map(|(n, _)| n).collect();
            ok &= listed == sorted && coord.len() == 1;
            coordinators.extend(coord.into_iter().cloned());
        }
        coordinators.dedup();
        if ok && coordinators.len() == 1 {
            return coordinators.remove(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no agreement on {names:?}")
}

#[test]
fn p2p_nodes_chat_and_survive_a_killed_coordinator() {
    let mut alice = spawn("alice");
    let ready = alice.event_of("ready");
    assert!(ready["node_id"].as_u64().is_some(), "p2p ready carries the node ID: {ready}");
    let mut bob = spawn("bob");
    bob.event_of("ready");
    wait_agreed(&mut [&mut alice, &mut bob], &["alice", "bob"]);
    let mut carol = spawn("carol");
    carol.event_of("ready");
    let first = wait_agreed(&mut [&mut alice, &mut bob, &mut carol], &["alice", "bob", "carol"]);
    for p in [&alice, &bob, &carol] {
        assert!(p.last_coordinator().is_some(), "{} printed a coordinator event", p.name);
    }

    alice.say("hello p2p");
    for p in [&mut bob, &mut carol] {
        let m = p.event_of("message");
        assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("alice"), Some("hello p2p")));
    }
    bob.say("MSG:carol:psst");
    let m = carol.event_of("message");
    assert_eq!((m["kind"].as_str(), m["text"].as_str()), (Some("unicast"), Some("psst")));

    // A taken name is refused with name_taken and a non-zero exit.
    let mut dup = spawn("bob");
    assert_eq!(dup.event_of("error")["code"], "name_taken");
    assert_eq!(dup.finish(), 1);

    // Kill the coordinator abruptly.
    let mut procs = vec![alice, bob, carol];
    let at = procs.iter().position(|p| p.name == first).expect("the coordinator is one of us");
    let dead = procs.remove(at);
    let pid = dead.pid().to_string();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().expect("kill runs").success());
    let survivors: Vec<String> = procs.iter().map(|p| p.name.clone()).collect();
    let names: Vec<&str> = survivors.iter().map(String::as_str).collect();
    let (a, b) = procs.split_at_mut(1);
    let second = wait_agreed(&mut [&mut a[0], &mut b[0]], &names);
    assert_ne!(second, first);
    for p in &procs {
        assert_eq!(p.last_coordinator().as_deref(), Some(second.as_str()), "{} reported the new coordinator", p.name);
    }

    // They keep chatting.
    procs[0].say("still here");
    for p in procs.iter_mut() {
        let m = p.event_of("message");
        assert_eq!(m["text"], "still here");
    }
    let text = format!("MSG:{}:only you", procs[0].name);
    procs[1].say(&text);
    let m = procs[0].event_of("message");
    assert_eq!((m["kind"].as_str(), m["text"].as_str()), (Some("unicast"), Some("only you")));
    drop(dead);
}
