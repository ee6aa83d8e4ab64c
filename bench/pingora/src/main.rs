//! Minimal pingora reverse proxy for the issue-18 evaluation: listen on ARG1, forward every request to
//! ARG2 (HTTP/1.1, upstream keep-alive pooled by pingora), ARG3 worker threads.
use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

struct Fwd(String);

#[async_trait]
impl ProxyHttp for Fwd {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0.as_str(), false, String::new())))
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mut conf = ServerConf::default();
    conf.threads = a[3].parse().unwrap();
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = pingora_proxy::http_proxy_service(&server.configuration, Fwd(a[2].clone()));
    svc.add_tcp(&a[1]);
    server.add_service(svc);
    server.run_forever();
}
