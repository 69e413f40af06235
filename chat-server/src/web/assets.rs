//! The page, embedded in the binary: plain HTML, CSS and JavaScript modules (no build step, nothing
//! fetched from elsewhere at run time), served with headers that keep it to itself.
//!
//! | path          | file                  | what                                                  |
//! |---------------|-----------------------|-------------------------------------------------------|
//! | `/`           | `page/index.html`     | the layout                                            |
//! | `/style.css`  | `page/style.css`      | the looks                                             |
//! | `/app.js`     | `page/app.js`         | the page: conversations, people, messages, composer   |
//! | `/session.js` | `page/session.js`     | the connection: login, reconnect, resume (`sessionStorage`) |
//!
//! Every answer carries [`HEADERS`]: a content security policy allowing only this server's own
//! scripts, styles and WebSocket (no inline script, no other site, no framing), `nosniff`, and no
//! referrer. The page shows everything that comes from the network with `textContent`, never as HTML.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

/// Every file of the page.
pub const ASSETS: [Asset; 4] = [
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_str!("page/index.html") },
    Asset { path: "/style.css", content_type: "text/css; charset=utf-8", body: include_str!("page/style.css") },
    Asset { path: "/app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("page/app.js") },
    Asset {
        path: "/session.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("page/session.js"),
    },
];

/// Headers of every answer.
pub const HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-cache"),
];

/// The file served at `path`, if any (`/index.html` is `/`).
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_complete_and_renders_text_only() {
        assert!(find("/").unwrap().body.contains(r#"<script type="module" src="/app.js">"#));
        assert!(find("/index.html").is_some());
        assert!(find("/../Cargo.toml").is_none());
        assert!(find("/app.js").unwrap().body.contains(r#"from "/session.js""#));
        for asset in ASSETS {
            // Nothing from another site, and nothing from the network becomes HTML.
            assert!(!asset.body.contains("http://") && !asset.body.contains("https://"), "{}", asset.path);
            assert!(!asset.body.contains("innerHTML") && !asset.body.contains("outerHTML"), "{}", asset.path);
            assert!(!asset.body.contains("insertAdjacentHTML") && !asset.body.contains("document.write"));
        }
    }
}
