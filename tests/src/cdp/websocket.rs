//! The client half of a WebSocket (RFC 6455) on loopback, as much as CDP needs: the
//! handshake, masked text frames out, text frames in (fragments joined), pings
//! answered. Written here because it is a few dozen lines, where a WebSocket crate
//! would bring a dependency tree into the tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest message accepted from the browser (a screenshot is a few MB of base64).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The client half of a WebSocket on loopback.
pub struct WebSocket {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    mask_seed: u32,
}

impl WebSocket {
    /// Opens `path` on `127.0.0.1:port`; a read waits at most `timeout`.
    pub fn connect(port: u16, path: &str, timeout: Duration) -> std::io::Result<WebSocket> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.subsec_nanos());
        let key = base64_encode(&seed.to_le_bytes().repeat(4));
        let mut writer = stream.try_clone()?;
        write!(
            writer,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )?;
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status)?;
        if !status.contains(" 101 ") {
            return Err(std::io::Error::other(format!("handshake refused: {}", status.trim())));
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
        }
        Ok(WebSocket { reader, writer, mask_seed: seed | 1 })
    }

    pub fn send(&mut self, text: &str) -> std::io::Result<()> {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        // xorshift: a fresh mask per frame, as the RFC asks of clients.
        self.mask_seed ^= self.mask_seed << 13;
        self.mask_seed ^= self.mask_seed >> 17;
        self.mask_seed ^= self.mask_seed << 5;
        let mask = self.mask_seed.to_be_bytes();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.writer.write_all(&frame)
    }

    /// The next whole text message (fragments joined; pings answered).
    pub fn receive(&mut self) -> std::io::Result<String> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.reader.read_exact(&mut head)?;
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut bytes = [0u8; 2];
                    self.reader.read_exact(&mut bytes)?;
                    u64::from(u16::from_be_bytes(bytes))
                }
                127 => {
                    let mut bytes = [0u8; 8];
                    self.reader.read_exact(&mut bytes)?;
                    u64::from_be_bytes(bytes)
                }
                len => u64::from(len),
            };
            let mask = if head[1] & 0x80 != 0 {
                let mut bytes = [0u8; 4];
                self.reader.read_exact(&mut bytes)?;
                Some(bytes)
            } else {
                None
            };
            let len = usize::try_from(len)
                .ok()
                .filter(|len| message.len() + len <= MAX_MESSAGE)
                .ok_or_else(|| std::io::Error::other("message too large"))?;
            let mut payload = vec![0u8; len];
            self.reader.read_exact(&mut payload)?;
            if let Some(mask) = mask {
                payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= mask[i % 4]);
            }
            match opcode {
                0x0..=0x2 => message.extend_from_slice(&payload),
                0x8 => return Err(std::io::Error::other("the browser closed the socket")),
                0x9 => self.send_control(0xA, &payload)?,
                _ => {}
            }
            if fin && matches!(opcode, 0x0..=0x2) {
                return String::from_utf8(message).map_err(std::io::Error::other);
            }
        }
    }

    fn send_control(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len().min(125) as u8, 0, 0, 0, 0];
        frame.extend_from_slice(&payload[..payload.len().min(125)]);
        self.writer.write_all(&frame)
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0u32);
    for byte in text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=') {
        let value = BASE64.iter().position(|c| *c == byte)? as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(&encoded).as_deref(), Some(text.as_bytes()), "{encoded}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("!!"), None);
    }
}
