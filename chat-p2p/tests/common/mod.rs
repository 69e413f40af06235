//! The chaos scenario shared by the simulation invariants, and the invariant checks.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chat_core::rate::Rate;
use chat_core::{MessageId, NodeId, Recipients};
use chat_p2p::Limits;
use chat_p2p::sim::Sim;

/// Seeds per invariant test in the default run (twelve tests: 6,000 seeds). `SIM_SEEDS=N` runs `N`
/// seeds per test instead; `SIM_SEED=S` runs the single seed `S` (the reproduction command printed
/// on failure); `SIM_TRACE=1` also prints every frame delivered and the state after every step.
pub const SEEDS: u64 = 500;

/// Most nodes in a scenario.
pub const MAX_NODES: usize = 20;

/// Which faults a seed may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    /// Crashes and restarts only.
    Crashes,
    /// Crashes, restarts, broken links and partitions.
    All,
    /// Crashes and restarts, every send three messages at once, and coordinators that limit every
    /// member to [`PACED`], so that many submissions are refused (`RateLimited`) and resubmitted.
    PacedCrashes,
    /// The same, with broken links and partitions too.
    PacedAll,
}

impl Faults {
    /// Whether links break and the network splits.
    fn partitions(self) -> bool {
        matches!(self, Faults::All | Faults::PacedAll)
    }

    /// Whether the coordinators limit every member to [`PACED`].
    fn paced(self) -> bool {
        matches!(self, Faults::PacedCrashes | Faults::PacedAll)
    }
}

/// The flood-control limits of the paced scenarios: 5 messages a second, bursts of 2.
pub const PACED: Limits = Limits {
    messages: Rate { per_second: 5, burst: 2 },
    bytes: chat_p2p::node::DEFAULT_BYTE_RATE,
    flood_strikes: chat_p2p::node::DEFAULT_FLOOD_STRIKES,
};

/// The group size and number of chaos steps of a seed: 3 to 20 nodes, fewer steps for large groups
/// (small groups are the common case and the fastest).
pub fn shape(seed: u64) -> (usize, usize) {
    let mix = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    match mix % 10 {
        0..=5 => (3 + (mix / 10 % 4) as usize, 25),
        6..=8 => (7 + (mix / 10 % 6) as usize, 18),
        _ => (13 + (mix / 10 % (MAX_NODES as u64 - 12)) as usize, 12),
    }
}

/// Runs one seeded scenario: form a group, chaos, heal, quiet, a final broadcast from everybody.
pub fn run(seed: u64, faults: Faults) -> Sim {
    let (n, steps) = shape(seed);
    let limits = if faults.paced() { PACED } else { Limits::default() };
    let mut sim = Sim::with_limits(seed, n, Some(limits));
    let trace = sim.trace;
    sim.run_for(Duration::from_millis(1500));
    let mut counter = 0;
    for _ in 0..steps {
        let live = sim.live();
        let pick = |sim: &mut Sim, from: &[usize]| from[sim.random(from.len() as u64) as usize];
        let roll = sim.random(100);
        match roll {
            0..=54 if !live.is_empty() => {
                let i = pick(&mut sim, &live);
                let j = sim.random(n as u64) as usize;
                let k = sim.random(n as u64) as usize;
                let (nj, nk) = (sim.slots[j].name.clone(), sim.slots[k].name.clone());
                let recipients = match sim.random(3) {
                    0 => Recipients::Broadcast,
                    1 => Recipients::Unicast(nj),
                    _ => Recipients::multicast([nj, nk]).unwrap_or(Recipients::Broadcast),
                };
                // Paced: three at once, so the burst of 2 is exceeded.
                let copies = if faults.paced() { 3 } else { 1 };
                for _ in 0..copies {
                    counter += 1;
                    sim.send(i, recipients.clone(), &format!("m{counter}"));
                }
            }
            55..=64 if live.len() > 2 => {
                let i = pick(&mut sim, &live);
                sim.crash(i);
            }
            65..=74 => {
                let i = sim.random(n as u64) as usize;
                sim.restart(i);
            }
            75..=82 if faults.partitions() && live.len() >= 2 => {
                let i = pick(&mut sim, &live);
                let j = pick(&mut sim, &live);
                if i != j {
                    sim.break_link(i, j);
                }
            }
            83..=87 if faults.partitions() => {
                let side: Vec<usize> = (0..n).filter(|_| sim.random(2) == 0).collect();
                sim.partition(&side);
            }
            88..=92 => sim.heal(),
            _ => {}
        }
        if trace {
            eprintln!("--- after step (roll {roll})\n{}", describe(&sim));
        }
        let pause = sim.random(200);
        sim.run_for(Duration::from_millis(pause));
    }
    sim.heal();
    sim.run_for(Duration::from_secs(8));
    if trace {
        eprintln!("--- 8 s after the heal\n{}", describe(&sim));
    }
    for i in sim.live() {
        sim.send(i, Recipients::Broadcast, &format!("final{i}"));
    }
    sim.run_for(Duration::from_secs(4));
    sim
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

/// Runs `check` over the seeds `first..first + SEEDS` (or `SIM_SEEDS` / `SIM_SEED`, see [`SEEDS`]),
/// split over the available cores. On failure it panics with the seed, the broken invariant, a state
/// dump and a one-line command reproducing exactly that seed. `test` is `"file::function"`.
pub fn for_seeds(test: &str, first: u64, faults: Faults, check: impl Fn(&Sim) -> Result<(), String> + Sync) {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (first..first + env_u64("SIM_SEEDS").unwrap_or(SEEDS)).collect(),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let failure = std::sync::Mutex::new(None::<(u64, String)>);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                // Bounded: each worker takes each seed at most once.
                for _ in 0..seeds.len() {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&seed) = seeds.get(k) else { break };
                    if failure.lock().map_or(true, |f| f.as_ref().is_some_and(|(s, _)| *s < seed)) {
                        break;
                    }
                    let sim = run(seed, faults);
                    if let Err(e) = check(&sim) {
                        let report = format!("{e}\n{}", describe(&sim));
                        if let Ok(mut f) = failure.lock()
                            && f.as_ref().is_none_or(|(s, _)| seed < *s)
                        {
                            *f = Some((seed, report));
                        }
                    }
                }
            });
        }
    });
    let failure = failure.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some((seed, report)) = failure {
        let (file, function) = test.split_once("::").unwrap_or((test, ""));
        let (n, steps) = shape(seed);
        panic!(
            "seed {seed} ({faults:?}, {n} nodes, {steps} steps) broke the invariant: {report}\n\
             reproduce: SIM_SEED={seed} cargo test -p chat-p2p --test {file} -- --exact {function}"
        );
    }
}

/// A short state dump for failure messages.
pub fn describe(sim: &Sim) -> String {
    let mut s = String::new();
    for (i, slot) in sim.slots.iter().enumerate() {
        let state = slot.node.as_ref().map(|n| {
            format!(
                "id={:?} coord={:?} term={:?} member={} pending={}",
                n.id(),
                n.coordinator(),
                n.term(),
                n.is_member(),
                n.pending()
            )
        });
        s += &format!("  slot {i} {}: {:?} ids={:?} delivered={}\n", slot.name, state, slot.ids, slot.delivered.len());
    }
    s
}

/// Exactly one coordinator, known to every live node, every live node a member. (Which node it is
/// depends on the faults: the highest live ID wins an election, and no election runs while the
/// coordinator lives, so a node that joins later never takes over: `sim_calm.rs`.)
pub fn one_coordinator(sim: &Sim) -> Result<(), String> {
    let live: Vec<_> = sim.live().into_iter().filter_map(|i| sim.node(i)).collect();
    if live.is_empty() {
        return Ok(());
    }
    let coords: Vec<NodeId> = live.iter().filter(|n| n.is_coordinator()).filter_map(|n| n.id()).collect();
    if coords.len() != 1 {
        return Err(format!("{} coordinators: {coords:?}", coords.len()));
    }
    let c = coords[0];
    if let Some(n) = live.iter().find(|n| n.coordinator() != Some(c) || !n.is_member()) {
        return Err(format!("{:?} follows {:?}, not {c}", n.id(), n.coordinator()));
    }
    Ok(())
}

/// No election started while the coordinator followed was alive, coordinating and reachable, with
/// no fault for `CALM_AFTER`.
pub fn no_uncalled_election(sim: &Sim) -> Result<(), String> {
    match sim.uncalled.first() {
        None => Ok(()),
        Some(e) => Err(format!(
            "slot {} started an election at {:?} while slot {} coordinated {} ({} such elections)",
            e.slot,
            e.at,
            e.coordinator,
            e.term,
            sim.uncalled.len()
        )),
    }
}

/// A process keeps its ID for its whole life, except a renumbering after a partition of a node
/// admitted during the split.
pub fn stable_ids(sim: &Sim) -> Result<(), String> {
    for (i, slot) in sim.slots.iter().enumerate() {
        let Some(&(first, _)) = slot.life_ids.first() else { continue };
        if let Some((id, _)) = slot.life_ids.iter().skip(1).find(|(id, split)| *id != first && !split) {
            return Err(format!(
                "slot {i} held {first}, then {id} with no partition to explain it: {:?}",
                slot.life_ids
            ));
        }
    }
    Ok(())
}

/// Every live node told the same `joined` / `left` story: of two nodes, the story of the one
/// admitted later is the end of the other's.
pub fn same_membership_story(sim: &Sim) -> Result<(), String> {
    let live = sim.live();
    for &a in &live {
        for &b in &live {
            let (sa, sb) = (&sim.slots[a].story, &sim.slots[b].story);
            if a >= b {
                continue;
            }
            let (long, short) = if sa.len() >= sb.len() { (sa, sb) } else { (sb, sa) };
            if !long.ends_with(short) {
                return Err(format!("slots {a} and {b} tell different stories:\n  {a}: {sa:?}\n  {b}: {sb:?}"));
            }
        }
    }
    Ok(())
}

/// No two live nodes share an ID, and no ID was ever given to two processes except to nodes
/// admitted on two sides of a partition (renumbered when it heals).
pub fn unique_ids(sim: &Sim) -> Result<(), String> {
    let mut owner: HashMap<NodeId, usize> = HashMap::new();
    for (i, slot) in sim.slots.iter().enumerate() {
        let split: HashSet<NodeId> = slot.life_ids.iter().filter(|(_, s)| *s).map(|(id, _)| *id).collect();
        for id in slot.ids.iter().filter(|id| !split.contains(id)) {
            if let Some(j) = owner.insert(*id, i).filter(|j| *j != i) {
                return Err(format!("ID {id} given to slots {j} and {i}"));
            }
        }
    }
    let live: Vec<NodeId> = sim.live().into_iter().filter_map(|i| sim.node(i).and_then(|n| n.id())).collect();
    let distinct: HashSet<_> = live.iter().collect();
    if distinct.len() != live.len() {
        return Err(format!("live nodes share IDs: {live:?}"));
    }
    Ok(())
}

/// Any two messages delivered by two live nodes are delivered in the same relative order.
pub fn same_order(sim: &Sim) -> Result<(), String> {
    let logs: Vec<(usize, Vec<MessageId>)> =
        sim.live().into_iter().map(|i| (i, sim.slots[i].delivered.iter().map(|m| m.id).collect())).collect();
    for (a, la) in &logs {
        for (b, lb) in &logs {
            if a >= b {
                continue;
            }
            let pos_b: HashMap<MessageId, usize> = lb.iter().enumerate().map(|(k, id)| (*id, k)).collect();
            let mut last: Option<(usize, MessageId)> = None;
            for id in la {
                if let Some(&p) = pos_b.get(id) {
                    if let Some((q, prev)) = last.filter(|(q, _)| *q > p) {
                        return Err(format!("slots {a} and {b} disagree: {prev} vs {id} (positions {q} > {p} at {b})"));
                    }
                    last = Some((p, *id));
                }
            }
        }
    }
    Ok(())
}

/// Delivery respects causality: what a sender had delivered before sending comes first, and
/// Lamport stamps increase strictly along every log.
pub fn causal_order(sim: &Sim) -> Result<(), String> {
    let deps: HashMap<MessageId, &Vec<MessageId>> = sim.submitted.iter().map(|s| (s.id, &s.deps)).collect();
    for (i, slot) in sim.slots.iter().enumerate() {
        let index: HashMap<MessageId, usize> = slot.delivered.iter().enumerate().map(|(k, m)| (m.id, k)).collect();
        for (k, m) in slot.delivered.iter().enumerate() {
            if k > 0 && slot.delivered[k - 1].lamport >= m.lamport && !slot.crashed_ever {
                return Err(format!(
                    "slot {i}: stamps not increasing at {}: {} then {}",
                    m.id,
                    slot.delivered[k - 1].lamport,
                    m.lamport
                ));
            }
            for d in deps.get(&m.id).into_iter().flat_map(|v| v.iter()) {
                if index.get(d).is_some_and(|&p| p > k) {
                    return Err(format!("slot {i}: {} delivered before its cause {d}", m.id));
                }
            }
        }
    }
    Ok(())
}

/// Nothing duplicated anywhere; every message of a live sender was ordered; the final
/// broadcasts reached every live node.
pub fn nothing_lost(sim: &Sim) -> Result<(), String> {
    for (i, slot) in sim.slots.iter().enumerate() {
        let mut seen = HashSet::new();
        for m in &slot.delivered {
            if !seen.insert(m.id) {
                return Err(format!("slot {i} delivered {} twice", m.id));
            }
        }
    }
    let live = sim.live();
    for s in &sim.submitted {
        if live.contains(&s.node) && !sim.slots[s.node].crashed_ever && !s.resolved {
            return Err(format!("{} from live slot {} was never ordered", s.id, s.node));
        }
    }
    let finals: Vec<_> = sim.submitted.iter().filter(|s| s.recipients == Recipients::Broadcast).collect();
    for &i in &live {
        let got: HashSet<MessageId> = sim.slots[i].delivered.iter().map(|m| m.id).collect();
        for s in finals.iter().rev().take(live.len()) {
            if live.contains(&s.node) && !got.contains(&s.id) {
                return Err(format!("slot {i} never got the final broadcast {} of slot {}", s.id, s.node));
            }
        }
    }
    Ok(())
}

/// Flood control never slowed anybody down.
pub fn never_throttled(sim: &Sim) -> Result<(), String> {
    match sim.throttled {
        0 => Ok(()),
        n => Err(format!("{n} submissions were rate-limited: ordinary traffic trips flood control")),
    }
}
