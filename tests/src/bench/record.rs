//! `RESULT key=value ...` lines: one per run, appended to a file by `compare.sh`, read back by
//! `summarize` and `chart`. Values never contain spaces (spaces in errors become `_`).

use std::fmt::Write as _;

/// One `RESULT` line as ordered key/value pairs.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The pairs, in the order written.
    pub fields: Vec<(String, String)>,
}

impl Record {
    /// Adds `key=value` (whitespace in the value becomes `_`).
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        let value: String = value.to_string().chars().map(|c| if c.is_whitespace() { '_' } else { c }).collect();
        let value = if value.is_empty() { "-".to_string() } else { value };
        self.fields.push((key.to_string(), value));
        self
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a number, if present and numeric.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse().ok().filter(|v: &f64| v.is_finite())
    }

    /// Whether the run counts (`ok=1`).
    pub fn ok(&self) -> bool {
        self.get("ok") == Some("1")
    }

    /// Parses a `RESULT` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Record> {
        let rest = line.strip_prefix("RESULT ")?;
        let fields = rest
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(Record { fields })
    }

    /// Reads every `RESULT` line of the files.
    pub fn read_all(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<Record>> {
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            out.extend(text.lines().filter_map(Record::parse));
        }
        Ok(out)
    }
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = String::from("RESULT");
        for (k, v) in &self.fields {
            let _ = write!(line, " {k}={v}");
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_escapes_spaces() {
        let mut r = Record::default();
        r.set("scenario", "fanout-c100").set("deliv_per_s", 1234.5).set("err", "bad thing");
        let line = r.to_string();
        assert_eq!(line, "RESULT scenario=fanout-c100 deliv_per_s=1234.5 err=bad_thing");
        let back = Record::parse(&line).unwrap();
        assert_eq!(back.num("deliv_per_s"), Some(1234.5));
        assert_eq!(back.get("err"), Some("bad_thing"));
        assert!(Record::parse("something else").is_none());
    }
}
