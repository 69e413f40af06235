//! Medians and ratios of `RESULT` records, per scenario and target, as Markdown tables.
//!
//! Only runs that count (`ok=1`: every subscriber received every message) enter a median. Ratios
//! compare the reference target (`ours` if present, else the scenario's first target) with each
//! other target so that **above 1 means the reference is better**: `this ÷ ref` for lower-is-better
//! metrics (latency, CPU, memory) and `ref ÷ this` for throughput.

use std::fmt::Write as _;

use super::record::Record;

/// A metric shown in the tables.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Key in the `RESULT` line.
    pub key: &'static str,
    /// Column heading.
    pub title: &'static str,
    /// Whether larger values are better.
    pub higher_is_better: bool,
    /// Divisor for display (1e6 shows millions).
    pub scale: f64,
}

const DELIV: Metric = Metric { key: "deliv_per_s", title: "deliveries/s (M)", higher_is_better: true, scale: 1e6 };
const P50: Metric = Metric { key: "p50_us", title: "p50 µs", higher_is_better: false, scale: 1.0 };
const P99: Metric = Metric { key: "p99_us", title: "p99 µs", higher_is_better: false, scale: 1.0 };
const P999: Metric = Metric { key: "p999_us", title: "p999 µs", higher_is_better: false, scale: 1.0 };
const CPU: Metric =
    Metric { key: "cpu_s_per_M", title: "server CPU s / M deliveries", higher_is_better: false, scale: 1.0 };
const RSS: Metric =
    Metric { key: "rss_per_conn_b", title: "server RSS / connection (B)", higher_is_better: false, scale: 1.0 };
const JOIN: Metric = Metric { key: "join_ms", title: "time for all to join (ms)", higher_is_better: false, scale: 1.0 };
const IDLE_CPU: Metric =
    Metric { key: "server_cpu_s", title: "server CPU s (join + settle)", higher_is_better: false, scale: 1.0 };

const LOGINS: Metric = Metric { key: "logins_per_s", title: "logins/s", higher_is_better: true, scale: 1.0 };
const LOGIN_P50: Metric = Metric { key: "login_p50_us", title: "login p50 µs", higher_is_better: false, scale: 1.0 };
const LOGIN_P99: Metric = Metric { key: "login_p99_us", title: "login p99 µs", higher_is_better: false, scale: 1.0 };
const LOGIN_CPU: Metric =
    Metric { key: "server_cpu_ms_per_login", title: "server CPU ms / login", higher_is_better: false, scale: 1.0 };
const VERIFY: Metric =
    Metric { key: "verify_p50_ms", title: "password check ms (argon2id)", higher_is_better: false, scale: 1.0 };

/// The records of one scenario, grouped by target in first-seen order.
#[derive(Debug)]
pub struct Scenario<'a> {
    /// Scenario name.
    pub name: String,
    /// `(target, records)`.
    pub targets: Vec<(String, Vec<&'a Record>)>,
}

impl Scenario<'_> {
    /// `idle` or `bench`.
    pub fn kind(&self) -> &str {
        self.targets.first().and_then(|(_, r)| r.first()).and_then(|r| r.get("kind")).unwrap_or("bench")
    }

    /// Whether this is an open-loop (fixed-rate) scenario.
    pub fn open_loop(&self) -> bool {
        self.targets.iter().flat_map(|(_, r)| r).any(|r| r.num("rate").is_some_and(|v| v > 0.0))
    }

    /// The metrics the summary shows for this scenario.
    pub fn metrics(&self) -> Vec<Metric> {
        let mut metrics = match (self.kind(), self.open_loop()) {
            ("idle", _) => vec![RSS, JOIN, IDLE_CPU],
            ("argon2", _) => vec![VERIFY],
            ("logins", _) => vec![LOGINS, LOGIN_P50, LOGIN_P99, LOGIN_CPU],
            (_, true) => vec![P50, P99, P999, CPU],
            _ => vec![DELIV, P99, CPU],
        };
        // A load with a login storm beside it: the storm's figures too.
        if self.kind() == "bench" && self.targets.iter().flat_map(|(_, r)| r).any(|r| r.get("logins").is_some()) {
            metrics.extend([LOGINS, LOGIN_P99]);
        }
        metrics
    }

    /// The reference target: `preferred` if present, else `ours` if present, else the first.
    pub fn reference(&self, preferred: Option<&str>) -> Option<&str> {
        let names = self.targets.iter().map(|(t, _)| t.as_str());
        let named = |n: &str| names.clone().find(|t| *t == n);
        preferred.and_then(named).or_else(|| named("ours")).or_else(|| names.clone().next())
    }

    /// Median of `key` over the runs of `target` that count.
    pub fn median(&self, target: &str, key: &str) -> Option<f64> {
        let runs = &self.targets.iter().find(|(t, _)| t == target)?.1;
        median(runs.iter().filter(|r| r.ok()).filter_map(|r| r.num(key)).collect())
    }
}

/// Groups records by scenario, then target, keeping first-seen order.
pub fn group(records: &[Record]) -> Vec<Scenario<'_>> {
    let mut out: Vec<Scenario<'_>> = Vec::new();
    for r in records {
        let (Some(s), Some(t)) = (r.get("scenario"), r.get("target")) else { continue };
        let idx = match out.iter().position(|x| x.name == s) {
            Some(i) => i,
            None => {
                out.push(Scenario { name: s.to_string(), targets: Vec::new() });
                out.len() - 1
            }
        };
        let targets = &mut out[idx].targets;
        match targets.iter_mut().find(|(name, _)| name == t) {
            Some((_, runs)) => runs.push(r),
            None => targets.push((t.to_string(), vec![r])),
        }
    }
    out
}

/// The median (mean of the middle two for an even count); `None` if empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len().is_multiple_of(2) { (v[m - 1] + v[m]) / 2.0 } else { v[m] })
}

fn show(v: Option<f64>, scale: f64) -> String {
    match v {
        None => "–".into(),
        Some(v) => {
            let v = v / scale;
            if v.abs() >= 100.0 {
                format!("{v:.0}")
            } else if v.abs() >= 10.0 {
                format!("{v:.1}")
            } else if v.abs() >= 1.0 {
                format!("{v:.2}")
            } else {
                format!("{v:.3}")
            }
        }
    }
}

/// How much better the reference is than `this` (above 1: better).
fn ratio(metric: Metric, reference: Option<f64>, this: Option<f64>) -> String {
    match (reference, this) {
        (Some(r), Some(t)) if r > 0.0 && t > 0.0 => {
            format!("{:.2}×", if metric.higher_is_better { r / t } else { t / r })
        }
        _ => "–".into(),
    }
}

/// The whole report: one summary table (medians and ratios against `reference`, else `ours`) and
/// one detail table per scenario.
pub fn render(records: &[Record], reference: Option<&str>) -> String {
    let scenarios = group(records);
    let mut out = String::new();
    let name = reference.unwrap_or("ours");
    let _ = writeln!(out, "## Medians and ratios\n");
    let _ = writeln!(out, "Ratios: how many times better the reference ({name}) is; above 1 = {name} better.\n");
    let _ = writeln!(out, "| scenario | metric | medians per target | ratios |");
    let _ = writeln!(out, "|---|---|---|---|");
    for s in &scenarios {
        let Some(reference) = s.reference(reference) else { continue };
        for m in s.metrics() {
            let medians: Vec<String> =
                s.targets.iter().map(|(t, _)| format!("{t} {}", show(s.median(t, m.key), m.scale))).collect();
            let ratios: Vec<String> = s
                .targets
                .iter()
                .filter(|(t, _)| t != reference)
                .map(|(t, _)| format!("vs {t} {}", ratio(m, s.median(reference, m.key), s.median(t, m.key))))
                .collect();
            let _ = writeln!(out, "| {} | {} | {} | {} |", s.name, m.title, medians.join(" · "), ratios.join(" · "));
        }
    }
    for s in scenarios.iter().filter(|s| matches!(s.kind(), "bench" | "idle")) {
        let _ = writeln!(out, "\n### {}\n", s.name);
        if let Some((_, runs)) = s.targets.first()
            && let Some(r) = runs.first()
        {
            let keys = ["pattern", "subs", "pubs", "msgs", "size", "window", "rate", "clients"];
            let params: Vec<String> = keys.iter().filter_map(|k| r.get(k).map(|v| format!("{k}={v}"))).collect();
            let _ = writeln!(out, "{}\n", params.join(" "));
        }
        let idle = s.kind() == "idle";
        if idle {
            let _ = writeln!(
                out,
                "| target | runs ok | joined | join ms | RSS/conn B | RSS before→after KiB | server CPU s |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        } else {
            let _ = writeln!(
                out,
                "| target | runs ok | deliveries/s median [min..max] | p50 / p99 / p999 µs | server CPU s/M | generator CPU use | failures |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        }
        for (t, runs) in &s.targets {
            let ok = runs.iter().filter(|r| r.ok()).count();
            let med = |k: &str| s.median(t, k);
            if idle {
                let _ = writeln!(
                    out,
                    "| {t} | {ok}/{} | {} | {} | {} | {}→{} | {} |",
                    runs.len(),
                    show(med("joined"), 1.0),
                    show(med("join_ms"), 1.0),
                    show(med("rss_per_conn_b"), 1.0),
                    show(med("rss_before_kib"), 1.0),
                    show(med("rss_after_kib"), 1.0),
                    show(med("server_cpu_s"), 1.0),
                );
                continue;
            }
            let good: Vec<f64> = runs.iter().filter(|r| r.ok()).filter_map(|r| r.num("deliv_per_s")).collect();
            let lo = good.iter().copied().reduce(f64::min);
            let hi = good.iter().copied().reduce(f64::max);
            let failures: Vec<String> =
                runs.iter().filter(|r| !r.ok()).map(|r| r.get("err").unwrap_or("incomplete").to_string()).collect();
            let _ = writeln!(
                out,
                "| {t} | {ok}/{} | {} [{}..{}] M | {} / {} / {} | {} | {} | {} |",
                runs.len(),
                show(med("deliv_per_s"), 1e6),
                show(lo, 1e6),
                show(hi, 1e6),
                show(med("p50_us"), 1.0),
                show(med("p99_us"), 1.0),
                show(med("p999_us"), 1.0),
                show(med("cpu_s_per_M"), 1.0),
                show(med("gen_util"), 1.0),
                if failures.is_empty() { "–".to_string() } else { failures.join("; ") },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &str) -> Record {
        Record::parse(line).unwrap()
    }

    #[test]
    fn medians_ignore_failed_runs_and_ratios_favour_ours_above_one() {
        let records = vec![
            rec("RESULT scenario=f target=ours deliv_per_s=4e6 p99_us=100 cpu_s_per_M=1 rate=0 ok=1"),
            rec("RESULT scenario=f target=ours deliv_per_s=2e6 p99_us=300 cpu_s_per_M=3 rate=0 ok=1"),
            rec("RESULT scenario=f target=ours deliv_per_s=9e9 p99_us=1 cpu_s_per_M=0 rate=0 ok=0"),
            rec("RESULT scenario=f target=redis deliv_per_s=1.5e6 p99_us=400 cpu_s_per_M=4 rate=0 ok=1"),
        ];
        let s = group(&records);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].median("ours", "deliv_per_s"), Some(3e6));
        let text = render(&records, None);
        assert!(text.contains("| f | deliveries/s (M) | ours 3.00 · redis 1.50 | vs redis 2.00× |"), "{text}");
        assert!(text.contains("| f | p99 µs | ours 200 · redis 400 | vs redis 2.00× |"), "{text}");
    }

    #[test]
    fn another_reference_turns_the_ratios_round_and_storms_add_their_figures() {
        let records = vec![
            rec("RESULT scenario=f kind=bench target=ours deliv_per_s=4e6 p99_us=100 cpu_s_per_M=1 rate=0 ok=1"),
            rec("RESULT scenario=f kind=bench target=ours-tls deliv_per_s=3e6 p99_us=200 cpu_s_per_M=2 rate=0 ok=1"),
            rec("RESULT scenario=o kind=bench target=ours-tls p99_us=100 rate=5 ok=1"),
            rec(
                "RESULT scenario=o kind=bench target=ours-tls+storm p99_us=150 rate=5 logins=40 logins_per_s=4 login_p99_us=900 ok=1",
            ),
            rec("RESULT scenario=argon2 target=server kind=argon2 verify_p50_ms=25.0 ok=1"),
        ];
        let text = render(&records, Some("ours-tls"));
        assert!(text.contains("above 1 = ours-tls better"), "{text}");
        assert!(text.contains("| f | deliveries/s (M) | ours 4.00 · ours-tls 3.00 | vs ours 0.75× |"), "{text}");
        assert!(text.contains("| o | logins/s | ours-tls – · ours-tls+storm 4.00 | vs ours-tls+storm – |"), "{text}");
        assert!(
            text.contains("| o | p99 µs | ours-tls 100 · ours-tls+storm 150 | vs ours-tls+storm 1.50× |"),
            "{text}"
        );
        assert!(text.contains("| argon2 | password check ms (argon2id) | server 25.0 |  |"), "{text}");
        assert!(!text.contains("### argon2"), "no detail table for the password check: {text}");
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
