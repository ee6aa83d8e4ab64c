//! The `[proxy]` limits and trust settings in config.toml: defaults, parsing, typos.

use std::path::Path;

use wayback_core::{Config, Duration};

#[test]
fn proxy_limits_have_defaults_for_a_20000_file_process() {
    let c = Config::parse("", Path::new("x")).unwrap();
    assert_eq!(c.proxy.max_connections, 8192);
    assert_eq!(c.proxy.max_connections_per_client, 256);
    assert_eq!(c.proxy.header_timeout, Duration(20));
    assert_eq!(c.proxy.idle_timeout, Duration(60));
    let trusted: Vec<String> = c
        .proxy
        .trusted_proxies
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    assert_eq!(trusted, ["127.0.0.0/8", "::1/128"]);
}

#[test]
fn proxy_limits_parse() {
    let c = Config::parse(
        "[proxy]\nmax_connections = 1000\nmax_connections_per_client = 50\nheader_timeout = \"5s\"\n\
         idle_timeout = \"2m\"\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n",
        Path::new("x"),
    )
    .unwrap();
    assert_eq!(c.proxy.max_connections, 1000);
    assert_eq!(c.proxy.max_connections_per_client, 50);
    assert_eq!(c.proxy.header_timeout, Duration(5));
    assert_eq!(c.proxy.idle_timeout, Duration(120));
    assert_eq!(c.proxy.trusted_proxies.len(), 2);
    let none = Config::parse("[proxy]\ntrusted_proxies = []\n", Path::new("x")).unwrap();
    assert!(none.proxy.trusted_proxies.is_empty());
}

#[test]
fn proxy_limit_typos_and_bad_values_are_errors() {
    // Errors give the line (and the key, for unknown ones), never the file's text.
    for (text, needle) in [
        ("[proxy]\nmax_connection = 10\n", "max_connection"),
        ("[proxy]\nmax_connections = -1\n", "line 2"),
        ("[proxy]\nheader_timeout = \"soon\"\n", "line 2"),
        ("[proxy]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "line 2"),
    ] {
        let e = Config::parse(text, Path::new("/etc/wayback/config.toml")).unwrap_err();
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
}
