//! Cross-process: `chat-cli serve --cluster` instances on a 3-node NATS JetStream cluster that the
//! test starts itself on loopback (`tests/nats/install.sh` installs the pinned nats-server; without
//! it these tests are skipped, saying why). Clients are the real binary, read through `--json`.

mod common;
#[path = "common/nats.rs"]
mod nats;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, WAIT};
use nats::{Instance, NatsCluster};
use serde_json::Value;

/// A client of `addrs` (tried in turn), ready; if it is not within [`WAIT`], the test fails with what
/// it printed (its events and its standard error).
fn client(name: &str, addrs: &str) -> Proc {
    let mut p = common::spawn(name, &["--json", "--name", name, "--server", addrs]);
    let deadline = Instant::now() + WAIT;
    while let Some(e) = p.event_within(deadline.saturating_duration_since(Instant::now())) {
        if e["type"] == "ready" {
            return p;
        }
    }
    let stderr = p.stderr.lock().unwrap().clone();
    panic!(
        "{name}: not ready within {WAIT:?} (server {addrs}); its events: {:?}; its standard error: {stderr:?}",
        p.seen
    )
}

/// Message events seen by `p` until `count` of them pass `keep`.
fn messages(p: &mut Proc, count: usize, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT * 3;
    let mut got = Vec::new();
    while got.len() < count {
        assert!(Instant::now() < deadline, "{}: only {} of {count} messages", p.name, got.len());
        let e = p.event();
        if e["type"] == "message" && keep(&e) {
            got.push(e);
        }
    }
    got
}

fn text(e: &Value) -> &str {
    e["text"].as_str().unwrap_or_default()
}

/// The order key of a message: its sequence number (`id` is `0:SEQ`).
fn seq(e: &Value) -> u64 {
    e["id"].as_str().and_then(|id| id.split(':').nth(1)).and_then(|s| s.parse().ok()).expect("an id 0:SEQ")
}

/// Waits for `count` `sent` events of `p` (counting those already seen); their IDs.
fn sent_ids(p: &mut Proc, count: usize) -> BTreeSet<String> {
    let deadline = Instant::now() + WAIT * 3;
    while p.seen.iter().filter(|e| e["type"] == "sent").count() < count {
        assert!(Instant::now() < deadline, "{}: not every send was acknowledged", p.name);
        p.event();
    }
    p.seen.iter().filter(|e| e["type"] == "sent").map(|e| e["id"].to_string()).collect()
}

fn start_nats(test: &str) -> Option<NatsCluster> {
    nats::cluster_or_skip(test)
}

/// `chat-cli log ARGS --cluster URLS`: (success, standard output).
fn log_cmd(action: &str, urls: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(["log", action, "--cluster", urls]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn three_instances_chat_as_one_server_with_one_order_everywhere_and_unique_names() {
    let Some(nats) = start_nats("three_instances_chat_as_one_server") else { return };
    let urls = nats.urls();
    let instances: Vec<Instance> = (0..3).map(|_| Instance::start(&urls, "127.0.0.1:0", &[])).collect();
    let mut alice = client("alice", &instances[0].addr);
    let mut bob = client("bob", &instances[1].addr);
    let mut carol = client("carol", &instances[2].addr);
    for p in [&mut alice, &mut bob, &mut carol] {
        p.say("/join #ops");
        p.event_of("history");
    }
    const N: usize = 30;
    for i in 0..N {
        alice.say(&format!("/all a{i}"));
        alice.say(&format!("/msg bob ab{i}"));
        bob.say(&format!("b{i}")); // to #ops: bob is in it
        bob.say(&format!("/mc alice,carol bm{i}"));
        carol.say(&format!("/all c{i}"));
    }
    let texts = |kinds: &[&str]| -> BTreeSet<String> {
        kinds.iter().flat_map(|k| (0..N).map(move |i| format!("{k}{i}"))).collect()
    };
    let seen_by = [
        // A sender sees its own messages too: alice and bob see all five kinds, carol no `ab`.
        ("alice", expect_texts(&mut alice, &texts(&["a", "ab", "b", "bm", "c"]), &instances)),
        ("bob", expect_texts(&mut bob, &texts(&["a", "ab", "b", "bm", "c"]), &instances)),
        ("carol", expect_texts(&mut carol, &texts(&["a", "b", "bm", "c"]), &instances)),
    ];
    // One order: each member's messages in increasing sequence, Lamport stamps increasing along it,
    // and every message two members both received has the same content at the same sequence number.
    let mut by_seq: BTreeMap<u64, Value> = BTreeMap::new();
    for (who, list) in &seen_by {
        let seqs: Vec<u64> = list.iter().map(seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{who}: out of order: {seqs:?}");
        let lamports: Vec<u64> = list.iter().map(|e| e["lamport"].as_u64().unwrap()).collect();
        assert!(lamports.windows(2).all(|w| w[0] < w[1]), "{who}: stamps must increase along the order");
        for e in list {
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("time");
            if let Some(before) = by_seq.insert(seq(&e), e.clone()) {
                assert_eq!(before, e, "two members saw different messages at one sequence number");
            }
        }
    }
    let kinds = |who: &str, prefix: &str| {
        seen_by
            .iter()
            .find(|(w, _)| *w == who)
            .unwrap()
            .1
            .iter()
            .filter(|e| text(e).starts_with(prefix) && text(e)[prefix.len()..].parse::<u32>().is_ok())
            .count()
    };
    assert_eq!(
        (kinds("alice", "a"), kinds("alice", "ab"), kinds("alice", "b"), kinds("alice", "bm"), kinds("alice", "c")),
        (N, N, N, N, N)
    );
    assert_eq!(
        (kinds("bob", "a"), kinds("bob", "ab"), kinds("bob", "b"), kinds("bob", "bm"), kinds("bob", "c")),
        (N, N, N, N, N)
    );
    assert_eq!(
        (kinds("carol", "a"), kinds("carol", "ab"), kinds("carol", "b"), kinds("carol", "bm"), kinds("carol", "c")),
        (N, 0, N, N, N)
    );
    assert_eq!(by_seq.len(), 5 * N, "every message stored once");

    // Names are unique across instances: six logins as dave at once, two per instance, one wins.
    let mut daves: Vec<Proc> = (0..6)
        .map(|i| {
            let addr = &instances[i % 3].addr;
            common::spawn(&format!("dave{i}"), &["--json", "--name", "dave", "--server", addr, "--no-reconnect"])
        })
        .collect();
    let mut outcomes = Vec::new();
    for d in &mut daves {
        let e = d.event();
        outcomes.push(if e["type"] == "ready" {
            "ready".to_string()
        } else {
            e["code"].as_str().unwrap_or("?").to_string()
        });
    }
    assert_eq!(outcomes.iter().filter(|o| *o == "ready").count(), 1, "exactly one dave: {outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "name_taken").count(), 5, "{outcomes:?}");
    drop(daves);

    for p in [alice, bob, carol] {
        assert_eq!(p.finish(), 0);
    }
    let (ok, report) = log_cmd("verify", &urls);
    assert!(ok, "log verify --cluster: {report}");
    let (ok, shown) = log_cmd("show", &urls);
    assert!(ok, "{shown}");
    assert!(shown.contains("FROM alice TO ALL: a0") && shown.contains("ROOM JOIN #ops carol"), "{shown}");
    for instance in instances {
        assert_eq!(instance.terminate(), Some(0));
    }
}

#[test]
fn kill_9_of_an_instance_mid_traffic_its_clients_resume_on_another_exactly_once_in_order() {
    const COUNT: usize = 300;
    let Some(nats) = start_nats("kill_9_of_an_instance") else { return };
    let urls = nats.urls();
    let a = Instance::start(&urls, "127.0.0.1:0", &[]);
    let b = Instance::start(&urls, "127.0.0.1:0", &[]);
    let both = format!("{},{}", a.addr, b.addr);
    let mut alice = client("alice", &both);
    let mut bob = client("bob", &both);
    let mut carol = client("carol", &b.addr);
    for i in 0..COUNT / 2 {
        alice.say(&format!("k{i}"));
    }
    let first = messages(&mut bob, 50, |e| text(e).starts_with('k'));
    a.kill();
    for i in COUNT / 2..COUNT {
        alice.say(&format!("k{i}"));
    }
    let rest = messages(&mut bob, COUNT - first.len(), |e| text(e).starts_with('k'));
    let got: Vec<String> = first.iter().chain(&rest).map(|e| text(e).to_string()).collect();
    let expected: Vec<String> = (0..COUNT).map(|i| format!("k{i}")).collect();
    assert_eq!(got, expected, "bob: every message exactly once, in order");
    let on_b = messages(&mut carol, COUNT, |e| text(e).starts_with('k'));
    assert_eq!(on_b.iter().map(|e| text(e).to_string()).collect::<Vec<_>>(), expected, "carol, on the survivor");
    assert!(bob.seen.iter().any(|e| e["type"] == "resumed"), "bob resumed: {:?}", bob.seen);
    assert_eq!(sent_ids(&mut alice, COUNT).len(), COUNT, "one message per line, none stored twice");
    assert!(
        !carol.seen.iter().any(|e| e["type"] == "left" || e["type"] == "joined"),
        "nobody left or joined for carol: {:?}",
        carol.seen
    );
    for p in [alice, bob, carol] {
        assert_eq!(p.finish(), 0);
    }
    let (ok, report) = log_cmd("verify", &urls);
    assert!(ok, "{report}");
    drop(b);
}

/// An instance accepts connections only once its own `Up` is applied. Before, its log time is that
/// of the last batch it read: the epoch on a fresh stream, or a batch older than the login timeout
/// after a pause. A connection accepted then got a login deadline in that past and was closed, "no
/// login within …", as soon as the next batch moved log time to the present (seen once in CI).
/// Here a client connects and types its name the moment the instance listens, in both cases.
#[test]
fn a_client_connecting_while_an_instance_starts_is_served_not_timed_out() {
    let Some(nats) = start_nats("a_client_connecting_while_an_instance_starts") else { return };
    let urls = nats.urls();
    let extra = ["--text-listen", "127.0.0.1:0", "--login-timeout-ms", "1000"];
    for case in ["a fresh stream", "a stream whose last batch is older than the login timeout"] {
        let instance = Instance::spawn(&urls, "127.0.0.1:0", &extra);
        let text = instance.text.clone().expect("the listening event names the text listener");
        let mut carol = TcpStream::connect(&text).unwrap();
        carol.set_read_timeout(Some(WAIT)).unwrap();
        carol.write_all(b"CONNECT\ncarol\n").unwrap();
        let lines: Vec<String> = BufReader::new(carol).lines().take(3).map(|l| l.expect("a line in time")).collect();
        assert_eq!(lines[2], "0:Sistema:Usuários conectados: carol", "{case}: {lines:?}");
        instance.wait_for_log("serving as one instance");
        assert_eq!(instance.terminate(), Some(0));
        std::thread::sleep(Duration::from_millis(1500)); // the stream's last batch ages past the timeout
    }
}

#[test]
fn kill_9_of_the_stream_leader_mid_traffic_loses_nothing_acknowledged_and_reports_the_stall() {
    const COUNT: usize = 400;
    let Some(mut nats) = start_nats("kill_9_of_the_stream_leader") else { return };
    let urls = nats.urls();
    let a = Instance::start(&urls, "127.0.0.1:0", &[]);
    let mut alice = client("alice", &a.addr);
    let mut bob = client("bob", &a.addr);
    for i in 0..COUNT / 2 {
        alice.say(&format!("s{i}"));
    }
    let first = messages(&mut bob, 50, |e| text(e).starts_with('s'));
    let leader = nats.stream_leader("CHAT").expect("the stream has a leader");
    nats.kill(leader);
    let killed = Instant::now();
    for i in COUNT / 2..COUNT {
        alice.say(&format!("s{i}"));
    }
    let rest = patient_messages(&mut bob, COUNT - first.len(), |e| text(e).starts_with('s'), "after the leader kill")
        .unwrap_or_else(|e| {
            panic!("{e}\ninstance log: {:?}", a.log.lock().unwrap().iter().rev().take(12).collect::<Vec<_>>())
        });
    let recovered = killed.elapsed();
    let got: Vec<String> = first.iter().chain(&rest).map(|e| text(e).to_string()).collect();
    let expected: Vec<String> = (0..COUNT).map(|i| format!("s{i}")).collect();
    assert_eq!(got, expected, "every message once, in order");
    let acked = sent_ids(&mut alice, COUNT);
    let delivered: BTreeSet<String> = first.iter().chain(&rest).map(|e| e["id"].to_string()).collect();
    assert!(acked.is_subset(&delivered), "every acknowledged message was delivered");
    // The stall is reported in the instance's log when it happens (one publish waited over a second).
    let log = a.log.lock().unwrap().clone();
    let stall: Option<u64> = log
        .iter()
        .filter(|l| l.contains("acknowledges again after a stall"))
        .filter_map(|l| l.split("stalled_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
        .max();
    println!(
        "stream leader n{} killed; bob had everything {recovered:?} later; stall reported: {stall:?} ms",
        leader + 1
    );
    if log.iter().any(|l| l.contains("does not acknowledge")) {
        let stall = stall.expect("a stall that began is reported when it ends");
        assert!(stall < 30_000, "the stall is bounded: {stall} ms");
    }
    nats.restart(leader);
    for p in [alice, bob] {
        assert_eq!(p.finish(), 0);
    }
    let (ok, report) = log_cmd("verify", &urls);
    assert!(ok, "{report}");
    assert_eq!(a.terminate(), Some(0));
}

#[test]
fn a_restart_of_the_whole_cluster_keeps_history_and_rooms() {
    let Some(mut nats) = start_nats("a_restart_of_the_whole_cluster") else { return };
    let urls = nats.urls();
    let grace = ["--grace-ms", "500"];
    let a = Instance::start(&urls, "127.0.0.1:0", &grace);
    let b = Instance::start(&urls, "127.0.0.1:0", &grace);
    let mut alice = client("alice", &a.addr);
    let mut bob = client("bob", &b.addr);
    alice.say("/join #ops");
    alice.event_of("history");
    bob.say("/join #ops");
    bob.event_of("history");
    for i in 0..10 {
        alice.say(&format!("r{i}"));
        bob.say(&format!("/all g{i}"));
    }
    messages(&mut alice, 20, |_| true);
    assert_eq!(alice.finish(), 0);
    drop(bob); // gone without a word
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(b.terminate(), Some(0));
    nats.stop_all();
    nats.start_all();
    let a = Instance::start(&urls, "127.0.0.1:0", &grace);
    // bob's session outlived the cluster (detached); its grace period runs on log time, then the
    // name is free again. Log in until it is.
    let deadline = Instant::now() + WAIT;
    let mut bob = loop {
        let mut p = common::spawn("bob", &["--json", "--name", "bob", "--server", &a.addr, "--no-reconnect"]);
        if p.event()["type"] == "ready" {
            break p;
        }
        assert!(Instant::now() < deadline, "bob's old session never ended");
        std::thread::sleep(Duration::from_millis(300));
    };
    let ready = bob.seen[0].clone();
    assert_eq!(ready["rooms"], serde_json::json!(["#ops"]), "bob is still in #ops: {ready}");
    bob.say("/history 50 #ops");
    let history = bob.event_of("history");
    let texts: Vec<&str> = history["messages"].as_array().unwrap().iter().map(text).collect();
    assert_eq!(texts, (0..10).map(|i| format!("r{i}")).collect::<Vec<_>>(), "the room's history");
    bob.say("/history 50");
    let everything = bob.event_of("history");
    let g = everything["messages"].as_array().unwrap().iter().filter(|m| text(m).starts_with('g')).count();
    assert_eq!(g, 10, "the broadcasts: {everything}");
    assert_eq!(bob.finish(), 0);
    assert_eq!(a.terminate(), Some(0));
}

#[test]
fn a_nats_server_older_than_2_10_is_refused_at_connect_with_a_clear_message() {
    // A fake NATS server on loopback that announces 2.9.10 and answers PING.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        let info = r#"{"server_id":"FAKE","server_name":"fake","version":"2.9.10","go":"go1.19","host":"127.0.0.1","port":4222,"headers":true,"max_payload":1048576,"proto":1,"jetstream":true}"#;
        let _ = write!(stream, "INFO {info}\r\n");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.starts_with("PING") {
                let _ = stream.write_all(b"PONG\r\n");
            }
            line.clear();
        }
    });
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cluster", &format!("nats://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nats-server 2.9.10 is too old") && stderr.contains("2.10 or later"), "{stderr}");
    let _ = fake.join();
}

#[test]
fn bad_cluster_flags_are_usage_errors() {
    for args in [
        &["serve", "--cluster", "http://127.0.0.1:4222"][..],
        &["serve", "--cluster", "nats://127.0.0.1"],
        &["serve", "--cluster-ca", "ca.pem"],
        &["serve", "--cluster", "nats://127.0.0.1:4222", "--cluster-stream", "a.b"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(args).output().unwrap();
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty(), "{args:?} says why");
    }
}

/// Like [`messages`] with a longer patience (a failover on
/// a loaded machine), saying what was seen when it runs out.
fn patient_messages(
    p: &mut Proc,
    count: usize,
    keep: impl Fn(&Value) -> bool,
    phase: &str,
) -> Result<Vec<Value>, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = Vec::new();
    while got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(e) = p.event_within(left.min(Duration::from_secs(60))) else {
            let other: Vec<&Value> = p.seen.iter().filter(|e| e["type"] != "message").collect();
            return Err(format!(
                "{} ({phase}): {} of {count} messages; last non-message events: {:?}",
                p.name,
                got.len(),
                &other[other.len().saturating_sub(8)..]
            ));
        };
        if e["type"] == "message" && keep(&e) {
            got.push(e);
        }
    }
    Ok(got)
}

/// The messages `p` receives until it has as many as `expected` (texts); if they stop coming, the
/// test fails with [`stall_report`].
fn expect_texts(p: &mut Proc, expected: &BTreeSet<String>, instances: &[Instance]) -> Vec<Value> {
    patient_messages(p, expected.len(), |_| true, "the traffic")
        .unwrap_or_else(|e| panic!("{e}\n{}", stall_report(p, expected, instances)))
}

/// What a client that stopped receiving saw: the messages missing (by text and by sequence number),
/// its other events and its standard error, and each instance's last log lines.
fn stall_report(p: &mut Proc, expected: &BTreeSet<String>, instances: &[Instance]) -> String {
    while p.event_within(Duration::from_millis(200)).is_some() {}
    let messages: Vec<&Value> = p.seen.iter().filter(|e| e["type"] == "message").collect();
    let got: BTreeSet<String> = messages.iter().map(|e| text(e).to_string()).collect();
    let missing: Vec<&String> = expected.difference(&got).collect();
    let unexpected: Vec<&String> = got.difference(expected).collect();
    let seqs: BTreeSet<u64> = messages.iter().map(|e| seq(e)).collect();
    let (first, last) = (seqs.first().copied().unwrap_or(0), seqs.last().copied().unwrap_or(0));
    let gaps: Vec<u64> = (first..=last).filter(|s| !seqs.contains(s)).collect();
    let other: Vec<&Value> = p.seen.iter().filter(|e| e["type"] != "message" && e["type"] != "sent").collect();
    let stderr = p.stderr.lock().unwrap().clone();
    let mut report = format!(
        "{}: {} messages; missing {missing:?}; unexpected {unexpected:?}; sequence numbers {first}..={last} \
         without {gaps:?}\nits other events but `sent` (last 30): {:?}\nits standard error (last 30 lines): {:?}\n",
        p.name,
        messages.len(),
        &other[other.len().saturating_sub(30)..],
        &stderr[stderr.len().saturating_sub(30)..],
    );
    for (i, instance) in instances.iter().enumerate() {
        let log = instance.log.lock().unwrap();
        report += &format!(
            "instance {i} ({}), last 30 log lines: {:?}\n",
            instance.addr,
            &log[log.len().saturating_sub(30)..]
        );
    }
    report
}

/// The soak's messages: their texts.
fn soak_messages(p: &mut Proc, count: usize, phase: &str) -> Result<Vec<String>, String> {
    Ok(patient_messages(p, count, |e| text(e).starts_with('r'), phase)?.iter().map(|e| text(e).to_string()).collect())
}

/// What the soak saw when it got stuck: the writer's last events and each instance's last log lines.
fn soak_report(alice: &mut Proc, instances: &[Option<Instance>]) -> String {
    while alice.event_within(Duration::from_millis(200)).is_some() {}
    let other: Vec<&Value> = alice.seen.iter().filter(|e| e["type"] != "message").collect();
    let mut report = format!("alice's last events: {:?}\n", &other[other.len().saturating_sub(8)..]);
    for (i, instance) in instances.iter().enumerate() {
        if let Some(instance) = instance {
            let log = instance.log.lock().unwrap();
            report += &format!("instance {i} ({}): {:?}\n", instance.addr, &log[log.len().saturating_sub(6)..]);
        }
    }
    report
}

/// The soak: `SOAK_ROUNDS` (default 5) rounds of `kill -9` of an instance and of a NATS node under
/// traffic, each restarted afterwards; every message exactly once, in order, at a reader connected
/// to all three instances, and the log verifies. Run with
/// `cargo test -p chat-cli --release --test cli_cluster -- --ignored --nocapture`.
#[test]
#[ignore = "long: cargo test -p chat-cli --release --test cli_cluster -- --ignored --nocapture"]
fn soak_kill_9_of_instances_and_nats_nodes_round_after_round() {
    const PER_HALF: usize = 100;
    let rounds: usize = std::env::var("SOAK_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5).clamp(1, 1000);
    let Some(mut nats) = start_nats("soak") else { return };
    let urls = nats.urls();
    let mut instances: Vec<Option<Instance>> =
        (0..3).map(|_| Some(Instance::start(&urls, "127.0.0.1:0", &[]))).collect();
    let addrs: Vec<String> = instances.iter().map(|i| i.as_ref().unwrap().addr.clone()).collect();
    let forward = addrs.join(",");
    let backward = addrs.iter().rev().cloned().collect::<Vec<_>>().join(",");
    let mut alice = client("alice", &forward);
    let mut bob = client("bob", &backward);
    let mut expected = Vec::new();
    let mut got = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        let victim = round % 3;
        // An instance dies mid-traffic and comes back on its address.
        for half in 0..2 {
            for i in 0..PER_HALF {
                let line = format!("r{round}i{half}-{i}");
                alice.say(&line);
                expected.push(line);
            }
            if half == 0 {
                got.extend(
                    soak_messages(&mut bob, PER_HALF / 2, "before the instance kill")
                        .unwrap_or_else(|e| panic!("{e}\n{}", soak_report(&mut alice, &instances))),
                );
                instances[victim].take().expect("running").kill();
            }
        }
        let missing = expected.len() - got.len();
        got.extend(
            soak_messages(&mut bob, missing, "after the instance kill")
                .unwrap_or_else(|e| panic!("{e}\n{}", soak_report(&mut alice, &instances))),
        );
        instances[victim] = Some(Instance::start(&urls, &addrs[victim], &[]));
        // A NATS node dies mid-traffic (the stream leader every other round) and comes back.
        let node = if round % 2 == 0 { nats.stream_leader("CHAT").unwrap_or(victim) } else { victim };
        for half in 0..2 {
            for i in 0..PER_HALF {
                let line = format!("r{round}n{half}-{i}");
                alice.say(&line);
                expected.push(line);
            }
            if half == 0 {
                nats.kill(node);
            }
        }
        let missing = expected.len() - got.len();
        got.extend(
            soak_messages(&mut bob, missing, "after the NATS node kill")
                .unwrap_or_else(|e| panic!("{e}\n{}", soak_report(&mut alice, &instances))),
        );
        nats.start_all();
        assert_eq!(got, expected, "round {round}: every message exactly once, in order");
        println!(
            "round {round}: instance {victim} and NATS node n{} killed; {} messages so far, {:?}",
            node + 1,
            got.len(),
            started.elapsed()
        );
    }
    assert_eq!(sent_ids(&mut alice, expected.len()).len(), expected.len(), "each line stored once");
    for p in [alice, bob] {
        assert_eq!(p.finish(), 0);
    }
    let (ok, report) = log_cmd("verify", &urls);
    assert!(ok, "{report}");
    for instance in instances.into_iter().flatten() {
        assert_eq!(instance.terminate(), Some(0));
    }
}
