//! A tiny registry that serves fixed content, to test what rcompose does with a registry that
//! lies (wrong digests, hostile layers). It answers on 127.0.0.1 only and stops with the test.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

pub struct FakeRegistry {
    pub host: String,
}

/// (content type, body) by request path.
pub type Routes = HashMap<String, (String, Vec<u8>)>;

impl FakeRegistry {
    pub fn start(routes: Routes) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let routes = Arc::new(routes);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let routes = routes.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut request = String::new();
                        if reader.read_line(&mut request).unwrap_or(0) == 0 {
                            return;
                        }
                        // Skip the headers.
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                                break;
                            }
                        }
                        let mut parts = request.split_whitespace();
                        let method = parts.next().unwrap_or("");
                        let path = parts.next().unwrap_or("").to_string();
                        let (status, ctype, body) = if path == "/v2/" {
                            ("200 OK", "application/json".to_string(), b"{}".to_vec())
                        } else if let Some((t, b)) = routes.get(&path) {
                            ("200 OK", t.clone(), b.clone())
                        } else {
                            (
                                "404 Not Found",
                                "application/json".to_string(),
                                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#
                                    .to_vec(),
                            )
                        };
                        let head = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        if stream.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        if method != "HEAD" && stream.write_all(&body).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeRegistry { host }
    }
}
