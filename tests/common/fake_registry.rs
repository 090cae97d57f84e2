//! A tiny registry that serves fixed content, to test what rcompose does with a registry that
//! lies (wrong digests, hostile layers) and with Docker Hub's bearer-token flow. It answers on
//! 127.0.0.1 only and stops with the test process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct FakeRegistry {
    pub host: String,
    /// Tokens handed out by the token endpoint.
    pub tokens_issued: Arc<AtomicUsize>,
}

/// (content type, body) by request path.
pub type Routes = HashMap<String, (String, Vec<u8>)>;

impl FakeRegistry {
    /// An open registry.
    pub fn start(routes: Routes) -> FakeRegistry {
        Self::serve(routes, None)
    }

    /// A registry that wants `Authorization: Bearer <token>`, obtained from its own token
    /// endpoint (`/token`) the way Docker Hub's auth service hands them out.
    pub fn start_with_token(routes: Routes, token: &str) -> FakeRegistry {
        Self::serve(routes, Some(token.to_string()))
    }

    fn serve(routes: Routes, token: Option<String>) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let routes = Arc::new(routes);
        let issued = Arc::new(AtomicUsize::new(0));
        let (h, counter) = (host.clone(), issued.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (routes, token, host, counter) =
                    (routes.clone(), token.clone(), h.clone(), counter.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut request = String::new();
                        if reader.read_line(&mut request).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut authorization = String::new();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                                break;
                            }
                            if let Some((name, value)) = h.split_once(':') {
                                if name.eq_ignore_ascii_case("authorization") {
                                    authorization = value.trim().to_string();
                                }
                            }
                        }
                        let mut parts = request.split_whitespace();
                        let method = parts.next().unwrap_or("");
                        let path = parts.next().unwrap_or("").to_string();
                        let mut extra = String::new();
                        let authorised = match &token {
                            None => true,
                            Some(t) => authorization == format!("Bearer {t}"),
                        };
                        let (status, ctype, body) = if token.is_some() && path.starts_with("/token")
                        {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let t = token.clone().unwrap_or_default();
                            (
                                "200 OK",
                                "application/json".to_string(),
                                format!(
                                    r#"{{"token":"{t}","access_token":"{t}","expires_in":300}}"#
                                )
                                .into_bytes(),
                            )
                        } else if !authorised {
                            extra = format!(
                                "WWW-Authenticate: Bearer realm=\"http://{host}/token\",service=\"fake-registry\"\r\n"
                            );
                            (
                                "401 Unauthorized",
                                "application/json".to_string(),
                                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                                    .to_vec(),
                            )
                        } else if path == "/v2/" {
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
                            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}\r\n",
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
        FakeRegistry {
            host,
            tokens_issued: issued,
        }
    }
}
