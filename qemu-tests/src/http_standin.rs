//! A one-request HTTP answer on a loopback port, for the ARM stand-ins' network check: the
//! guest on QEMU's user network reaches the host's loopback as 10.0.2.2.

use anyhow::Result;
use std::io::{Read, Write};
use std::net::TcpListener;

/// Answers one HTTP request on a loopback port with `token` as the body; returns the port.
pub fn answer_once(token: &'static str) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ =
                write!(stream, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{token}", token.len());
        }
    });
    Ok(port)
}
