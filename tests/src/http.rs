//! A small HTTP client for tests, on `reqwest`'s blocking client: it calls the JSON API
//! of a node on loopback and returns every answer as a status and a body, whatever the
//! status (an error is only a failure to connect, send or read).
//!
//! The client never reuses a connection (each request opens its own, as a fresh client
//! would, so a node's connection limits see every request), follows no redirect, ignores
//! proxy settings of the environment, waits 2 s to connect and 15 s for the answer.
//!
//! One fallback stays hand-written: a body too large to sit in the socket buffers goes
//! out on a plain HTTP/1.0 exchange that reads the answer while a second thread writes
//! the body. A server that refuses such a body early (413) closes on the unread rest;
//! the client's write then fails, and hyper drops the answer that already arrived with
//! it, where the fallback still reads it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::redirect::Policy;
use reqwest::Method;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// For the whole answer: the API answers at once or within a long poll of 10 s, and
/// streams nothing to these helpers. (The async client's per-read timeout needs a
/// runtime on the reading thread, which the blocking client does not give.)
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Bodies up to this size are written at once into the socket buffers on loopback, so
/// an early answer cannot cut their writing short.
const BUFFERED_BODY: usize = 64 * 1024;

/// One client for the whole test binary: building one starts a runtime thread.
fn client() -> std::io::Result<&'static Client> {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = Client::builder()
        .timeout(ANSWER_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .redirect(Policy::none())
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    Ok(CLIENT.get_or_init(|| client))
}

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

/// A request with extra headers and a raw body: the status code and body. A server that
/// answers before it has read the whole body (a 413 for a body over its limit) is heard:
/// the answer is read while the body is still being sent.
pub fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    if body.len() > BUFFERED_BODY {
        return send_while_reading(addr, method, path, headers, body);
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(std::io::Error::other)?;
    let mut request = client()?.request(method, format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body.to_vec()).send().map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let body = response.bytes().map_err(std::io::Error::other)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The fallback for large bodies: HTTP/1.0, the body written by a second thread while
/// this one reads the answer; a reset after the answer arrived ends the answer.
fn send_while_reading(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut message = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        message.push_str(&format!("{name}: {value}\r\n"));
    }
    message.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut message = message.into_bytes();
    message.extend_from_slice(body);
    let mut writer = stream.try_clone()?;
    // A write error only means the server stopped reading; its answer decides.
    let sender = std::thread::spawn(move || writer.write_all(&message));
    let mut answer = Vec::new();
    if let Err(error) = stream.read_to_end(&mut answer) {
        if answer.is_empty() {
            return Err(error);
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("malformed answer: {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// `GET path`: the status code and body.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path, None)
}

/// `POST path` with a JSON body: the status code and body.
pub fn post(addr: SocketAddr, path: &str, json: &str) -> std::io::Result<(u16, String)> {
    request(addr, "POST", path, Some(json))
}

/// An answer's headers, names in lower case.
pub type Headers = Vec<(String, String)>;

/// `GET path`: the status code, the answer's headers and body.
pub fn get_with_headers(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Headers, String)> {
    let response =
        client()?.get(format!("http://{addr}{path}")).send().map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect();
    let body = response.bytes().map_err(std::io::Error::other)?;
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server that answers 413 after the head and closes without reading the body.
    fn refuse_after_head(listener: TcpListener) {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("read the head");
            head.push(byte[0]);
        }
        let answer = "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 7\r\n\
                      connection: close\r\n\r\ntoo big";
        stream.write_all(answer.as_bytes()).expect("answer");
    }

    #[test]
    fn an_early_refusal_of_a_large_body_is_heard() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || refuse_after_head(listener));
        let body = vec![b'x'; 16 * 1024 * 1024];
        let answer = post_raw(addr, "/upload", "application/octet-stream", &body);
        server.join().expect("server");
        assert_eq!(answer.expect("an answer"), (413, "too big".to_owned()));
    }

    #[test]
    fn redirects_are_returned_not_followed() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).expect("read");
            let answer = "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n";
            stream.write_all(answer.as_bytes()).expect("answer");
        });
        let answer = get(addr, "/here").expect("an answer");
        server.join().expect("server");
        assert_eq!(answer, (302, String::new()));
    }
}
