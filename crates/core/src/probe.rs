//! Protocol-level readiness probes over an already connected stream: "the port accepts connections" is not
//! "the service answers" (PostgreSQL accepts TCP while it still replays its WAL after a crash-consistent
//! snapshot and refuses queries with "the database system is starting up"). Pure: any Read + Write works.

use std::io::{Read, Write};

/// PostgreSQL: send a protocol 3.0 StartupMessage and read the first reply. Ready when the server asks for
/// authentication ('R') or refuses for any reason other than SQLSTATE 57P03 (cannot_connect_now: starting
/// up, recovering, shutting down) — a missing role or pg_hba entry still means the server takes queries.
pub fn postgres_ready(stream: &mut (impl Read + Write)) -> bool {
    let mut params = Vec::new();
    for (k, v) in [("user", "wayback-ready"), ("database", "postgres")] {
        params.extend_from_slice(k.as_bytes());
        params.push(0);
        params.extend_from_slice(v.as_bytes());
        params.push(0);
    }
    params.push(0);
    let len = (8 + params.len()) as u32;
    let mut msg = Vec::with_capacity(len as usize);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    msg.extend_from_slice(&params);
    if stream.write_all(&msg).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    if stream.read_exact(&mut head).is_err() {
        return false;
    }
    let body_len =
        u32::from_be_bytes([head[1], head[2], head[3], head[4]]).saturating_sub(4) as usize;
    match head[0] {
        b'R' => true,
        b'E' => {
            let mut body = vec![0u8; body_len.min(64 * 1024)];
            if stream.read_exact(&mut body).is_err() {
                return false;
            }
            sqlstate(&body).is_some_and(|code| code != "57P03")
        }
        _ => false,
    }
}

/// The SQLSTATE ('C' field) of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> Option<String> {
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0)?;
        if code == b'C' {
            return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
        }
        rest = &tail[end + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A fake connection: reads come from `reply`, writes are collected.
    struct Fake {
        reply: Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }
    impl Read for Fake {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.reply.read(b)
        }
    }
    impl Write for Fake {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.sent.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn error(code: &str) -> Vec<u8> {
        let mut body = b"SFATAL\0".to_vec();
        body.extend_from_slice(format!("C{code}\0Msome message\0\0").as_bytes());
        let mut m = vec![b'E'];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(&body);
        m
    }

    fn probe(reply: Vec<u8>) -> (bool, Vec<u8>) {
        let mut f = Fake {
            reply: Cursor::new(reply),
            sent: Vec::new(),
        };
        (postgres_ready(&mut f), f.sent)
    }

    #[test]
    fn startup_message_and_replies() {
        let (ready, sent) = probe(vec![b'R', 0, 0, 0, 8, 0, 0, 0, 10]);
        assert!(ready, "authentication request means ready");
        assert_eq!(&sent[4..8], &196_608u32.to_be_bytes());
        assert_eq!(
            u32::from_be_bytes(sent[0..4].try_into().unwrap()) as usize,
            sent.len()
        );
        assert!(!probe(error("57P03")).0, "starting up is not ready");
        assert!(
            probe(error("28000")).0,
            "a refused role still means the server answers"
        );
        assert!(!probe(Vec::new()).0, "closed connection");
        assert!(!probe(b"HTTP/1.1 400".to_vec()).0, "not PostgreSQL");
    }
}
