//! HTML building blocks of the console's pages: escaping, the page layout (navigation, the CSRF token in
//! a `<meta>` the script reads, the logout form) and the embedded assets. No inline script or style
//! anywhere (the Content-Security-Policy forbids them): behaviour is bound by `console.js` through
//! `data-*` attributes, positions on the timeline are set by it too.

use std::fmt::Write;

/// The stylesheet and the script, compiled into the binary.
pub const CSS: &str = include_str!("assets/console.css");
pub const JS: &str = include_str!("assets/console.js");

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The pages in the navigation: (path, title).
const NAV: &[(&str, &str)] = &[
    ("/", "Instances"),
    ("/snapshots", "Snapshots"),
    ("/history", "File history"),
    ("/resurrect", "Resurrect"),
];

/// A whole page. `csrf` is `None` on the login page (no session yet).
pub fn page(title: &str, active: &str, csrf: Option<&str>, body: &str) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · wayback</title><link rel=\"stylesheet\" href=\"/assets/console.css\">",
        esc(title)
    );
    if let Some(t) = csrf {
        let _ = write!(o, "<meta name=\"csrf-token\" content=\"{}\">", esc(t));
    }
    o.push_str("<script src=\"/assets/console.js\" defer></script></head><body>");
    o.push_str("<header><span class=\"brand\">wayback</span><nav>");
    if let Some(t) = csrf {
        for (path, name) in NAV {
            let cls = if *path == active {
                " class=\"active\""
            } else {
                ""
            };
            let _ = write!(o, "<a href=\"{path}\"{cls}>{name}</a>");
        }
        let _ = write!(
            o,
            "</nav><form method=\"post\" action=\"/logout\" class=\"logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Log out</button></form>",
            esc(t)
        );
    } else {
        o.push_str("</nav>");
    }
    let _ = write!(
        o,
        "</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    );
    o
}

/// A `YYYY-MM-DD HH:MM:SS UTC` date.
pub fn date(unix: i64) -> String {
    format!("{} UTC", wayback_core::civil::format_utc(unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_layout() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let p = page("Snapshots", "/snapshots", Some("tok<"), "<p>x</p>");
        assert!(p.contains("<meta name=\"csrf-token\" content=\"tok&lt;\">"));
        assert!(p.contains("<a href=\"/snapshots\" class=\"active\">"));
        assert!(!p.contains("<script>"), "no inline script");
        assert!(!p.contains("style="), "no inline style");
        let login = page("Log in", "", None, "");
        assert!(!login.contains("Log out"));
    }
}
