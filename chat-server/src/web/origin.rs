//! Which pages may open the WebSocket: the `Origin` check against cross-site WebSocket hijacking.
//!
//! A browser sends the `Origin` of the page that opens a WebSocket, and sends cookies and client
//! certificates whatever the page; so the server must refuse pages of other sites. The rules, in order:
//!
//! | request                                               | answer                                    |
//! |-------------------------------------------------------|-------------------------------------------|
//! | no `Origin` header                                    | accepted: not a browser (a browser always sends it), and a program may say anything anyway |
//! | `Origin` is one of the allowed origins (`--web-origin`) | accepted                                |
//! | `Origin` is this server's own page: `SCHEME://HOST` of the request's `Host`, where the host is an IP address or `localhost` | accepted |
//! | anything else (another site, `null`, a DNS name not allowed) | refused: `403 Forbidden`            |
//!
//! A DNS name is accepted only when allowed by name: otherwise a site could point its own name at this
//! server (DNS rebinding) and its page would look same-origin. Comparisons ignore ASCII case and a
//! trailing `/`.

/// The origin policy of one web listener.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// `http` or `https`: the scheme of this server's own page.
    scheme: &'static str,
    /// Origins accepted by name, normalized.
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// The policy of a listener serving `https` (with TLS) or `http`, accepting also `allowed`
    /// (`SCHEME://HOST[:PORT]`, as browsers send them).
    pub fn new(tls: bool, allowed: &[String]) -> Self {
        OriginPolicy {
            scheme: if tls { "https" } else { "http" },
            allowed: allowed.iter().map(|o| normalize(o)).collect(),
        }
    }

    /// Whether a WebSocket with these `Origin` and `Host` headers may open; `Err` says why not.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), String> {
        let Some(origin) = origin else { return Ok(()) };
        let origin = normalize(origin);
        if self.allowed.contains(&origin) {
            return Ok(());
        }
        let refused = || {
            let shown: String = origin.chars().take(100).collect();
            format!("origin {shown:?} may not open a WebSocket here (a page of this server may; see --web-origin)")
        };
        let Some(host) = host else { return Err(refused()) };
        let host = host.trim().to_ascii_lowercase();
        if origin != format!("{}://{host}", self.scheme) || !is_literal_host(&host) {
            return Err(refused());
        }
        Ok(())
    }
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Whether `host` (`HOST[:PORT]`) names this machine without DNS: an IP address or `localhost`.
fn is_literal_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name == "localhost" || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_page_and_allowed_origins_are_accepted() {
        let policy = OriginPolicy::new(false, &["https://chat.example.org/".to_string()]);
        let ok = |origin: Option<&str>, host: Option<&str>| policy.check(origin, host).is_ok();
        assert!(ok(None, None), "not a browser");
        assert!(ok(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        assert!(ok(Some("http://LOCALHOST:8080"), Some("localhost:8080")));
        assert!(ok(Some("http://[::1]:8080"), Some("[::1]:8080")));
        assert!(ok(Some("http://192.168.1.5"), Some("192.168.1.5")));
        assert!(ok(Some("https://Chat.Example.org"), Some("whatever")));
        let tls = OriginPolicy::new(true, &[]);
        assert!(tls.check(Some("https://127.0.0.1:8443"), Some("127.0.0.1:8443")).is_ok());
        assert!(tls.check(Some("http://127.0.0.1:8443"), Some("127.0.0.1:8443")).is_err(), "scheme differs");
    }

    #[test]
    fn other_sites_and_rebound_names_are_refused() {
        let policy = OriginPolicy::new(false, &[]);
        let refused = |origin: &str, host: Option<&str>| policy.check(Some(origin), host).is_err();
        assert!(refused("http://evil.example", Some("127.0.0.1:8080")), "another site");
        assert!(refused("http://evil.example:8080", Some("evil.example:8080")), "DNS rebinding");
        assert!(refused("null", Some("127.0.0.1:8080")), "a sandboxed or file page");
        assert!(refused("http://127.0.0.1:8080", Some("127.0.0.1:8081")), "another port");
        assert!(refused("http://127.0.0.1:8080", None));
        assert!(refused("http://127.0.0.1:x", Some("127.0.0.1:x")));
        assert!(refused("http://[::1", Some("[::1")));
        let long = format!("http://{}", "a".repeat(10_000));
        let why = policy.check(Some(&long), Some("127.0.0.1")).unwrap_err();
        assert!(why.len() < 300, "the refusal does not echo a huge header");
    }
}
