//! A minimal HTTP/1.0 client for tests: enough to call the JSON API of a node on
//! loopback without pulling an HTTP stack into the harness.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let json = [("Content-Type", "application/json")];
    request_with(addr, method, path, &json, body.unwrap_or("").as_bytes())
}

/// `POST path` with any body and content type: the status code and body.
pub fn post_raw(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    request_with(addr, "POST", path, &[("Content-Type", content_type)], body)
}

/// A request with extra headers and a raw body: the status code and body. The body is
/// written while the answer is read, so that a server refusing a large body early (413)
/// is heard even though it stops reading.
pub fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut writer = stream.try_clone()?;
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    // A write error only means the server stopped reading; its answer decides.
    let sender = std::thread::spawn(move || writer.write_all(&message));
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            // A reset after the answer arrived (the server closed on an unread body).
            Err(_) if !response.is_empty() => break,
            Err(error) => return Err(error),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("malformed response: {head:?}")))?;
    Ok((code, body.to_owned()))
}

/// `GET path`: the status code and body.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path, None)
}

/// `POST path` with a JSON body: the status code and body.
pub fn post(addr: SocketAddr, path: &str, json: &str) -> std::io::Result<(u16, String)> {
    request(addr, "POST", path, Some(json))
}
