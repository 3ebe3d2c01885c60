//! `seda load` against an https:// server: a rustls server on 127.0.0.1 with a self-signed
//! certificate made in the test. The certificate is verified with `--cacert`, refused with the
//! platform's roots or another CA, taken with `--insecure`; reconnects resume the session; the
//! handshakes are reported apart from the requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::load::load_server::{count, load_io, scratch, seda};

/// A self-signed certificate for 127.0.0.1: its PEM, its DER and its key.
struct Certificate {
    pem: String,
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

fn certificate() -> Certificate {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    Certificate { pem: made.cert.pem(), der: made.cert.der().clone(), key: made.key_pair.serialize_der() }
}

/// How the test server ends its connections.
#[derive(Clone, Copy, PartialEq)]
enum Closing {
    /// Keep-alive: it answers every request on a connection.
    Never,
    /// After each response (`Connection: close`), with a close_notify.
    EachResponse,
    /// After each response, an HTTP/1.0 one framed by the connection's end, closing TCP without
    /// a close_notify, as many servers do.
    WithoutNotify,
}

/// An HTTPS/1.1 server, a thread per connection, answering `ok` to each request and closing
/// as `closing` says.
struct TlsServer {
    port: u16,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl TlsServer {
    fn start(cert: &Certificate, closing: Closing) -> TlsServer {
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let server =
            TlsServer { port: listener.local_addr().unwrap().port(), received: Arc::default(), stop: Arc::default() };
        let (received, stop) = (server.received.clone(), server.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        tcp.set_nonblocking(false).unwrap();
                        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        let (config, received) = (config.clone(), received.clone());
                        std::thread::spawn(move || {
                            let session = rustls::ServerConnection::new(config).unwrap();
                            serve(rustls::StreamOwned::new(session, tcp), closing, &received)
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>,
    closing: Closing,
    received: &AtomicU64,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        received.fetch_add(1, Ordering::SeqCst);
        let stream = reader.get_mut();
        let answer: &[u8] = match closing {
            Closing::Never => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            Closing::EachResponse => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
            Closing::WithoutNotify => b"HTTP/1.0 200 OK\r\n\r\nok",
        };
        if stream.write_all(answer).and_then(|()| stream.flush()).is_err() {
            return;
        }
        match closing {
            Closing::Never => {}
            Closing::EachResponse => {
                stream.conn.send_close_notify();
                let _ = stream.flush();
                return;
            }
            Closing::WithoutNotify => {
                let _ = stream.sock.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
}

/// Under both of the generator's I/O backends.
mod https_is_verified_with_cacert_refused_without_it_and_taken_with_insecure {
    #[test]
    fn epoll() {
        super::https_is_verified_with_cacert_refused_without_it_and_taken_with_insecure("epoll")
    }

    #[test]
    fn uring() {
        super::https_is_verified_with_cacert_refused_without_it_and_taken_with_insecure("uring")
    }
}

fn https_is_verified_with_cacert_refused_without_it_and_taken_with_insecure(io: &str) {
    let cert = certificate();
    let server = TlsServer::start(&cert, Closing::Never);
    let ca = scratch(&format!("{io}-tls-ca.pem"));
    std::fs::write(&ca, &cert.pem).unwrap();
    let args = [&server.url(), "--cacert", ca.to_str().unwrap(), "--rate", "200", "-d", "1s", "-c", "2"];
    let (r, output) = load_io(io, "tls-cacert", &args);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (200, 200, 0));
    assert_eq!(server.received.load(Ordering::SeqCst), 200);
    // Two connections, two handshakes, apart from the requests' latency.
    assert_eq!(count(&r, "tls_handshakes.count"), 2);
    assert_eq!(count(&r, "tls_handshakes.time_us.count"), 2);
    assert_eq!(count(&r, "latency_us.corrected.count"), 200);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("TLS handshake"), "{stdout}");

    // The platform's roots do not hold a certificate made a moment ago; nor does another CA.
    let other = scratch(&format!("{io}-tls-other-ca.pem"));
    std::fs::write(&other, certificate().pem).unwrap();
    for trust in [vec![], vec!["--cacert", other.to_str().unwrap()]] {
        let output = seda()
            .arg("load")
            .args(["--io", io])
            .arg(server.url())
            .args(&trust)
            .args(["-d", "200ms"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(5), "{trust:?}: {stderr}");
        assert!(stderr.contains("TLS handshake failed: invalid peer certificate"), "{trust:?}: {stderr}");
    }
    assert_eq!(server.received.load(Ordering::SeqCst), 200, "no request went to an untrusted server");

    // --insecure takes it.
    let (r, _) = load_io(io, "tls-insecure", &[&server.url(), "--insecure", "--rate", "100", "-d", "500ms", "-c", "1"]);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (50, 50, 0));
    for file in [ca, other] {
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn reconnects_resume_the_tls_session() {
    // A handshake a request: under both backends, one after the other, so the two do not
    // share the CPUs (a debug build's handshakes are slow on a loaded machine).
    for io in ["epoll", "uring"] {
        reconnects_resume_the_tls_session_under(io);
    }
}

fn reconnects_resume_the_tls_session_under(io: &str) {
    let cert = certificate();
    let server = TlsServer::start(&cert, Closing::EachResponse);
    let ca = scratch(&format!("{io}-tls-resume-ca.pem"));
    std::fs::write(&ca, &cert.pem).unwrap();
    // The server closes after every response: each request has a connection of its own.
    let args = [&server.url(), "--cacert", ca.to_str().unwrap(), "--rate", "50", "-d", "1s", "-c", "1"];
    let (r, _) = load_io(io, "tls-resume", &args);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (50, 50, 0));
    let (handshakes, resumed) = (count(&r, "tls_handshakes.count"), count(&r, "tls_handshakes.resumed"));
    // One connection a request, and perhaps one more opened after the last before the end.
    assert!((50..=51).contains(&handshakes), "{handshakes} handshakes");
    // Every one resumed a session: the first the one of the check before the run, each next one
    // a session the previous connection was given.
    assert_eq!(resumed, handshakes);
    let _ = std::fs::remove_file(ca);
}

/// Under both of the generator's I/O backends.
mod a_response_framed_by_a_close_without_close_notify_is_complete {
    #[test]
    fn epoll() {
        super::a_response_framed_by_a_close_without_close_notify_is_complete("epoll")
    }

    #[test]
    fn uring() {
        super::a_response_framed_by_a_close_without_close_notify_is_complete("uring")
    }
}

fn a_response_framed_by_a_close_without_close_notify_is_complete(io: &str) {
    let cert = certificate();
    let server = TlsServer::start(&cert, Closing::WithoutNotify);
    let ca = scratch(&format!("{io}-tls-no-notify-ca.pem"));
    std::fs::write(&ca, &cert.pem).unwrap();
    let args = [&server.url(), "--cacert", ca.to_str().unwrap(), "--rate", "50", "-d", "1s", "-c", "1"];
    let (r, _) = load_io(io, "tls-no-notify", &args);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (50, 50, 0));
    let _ = std::fs::remove_file(ca);
}

#[test]
fn tls_options_need_an_https_target() {
    let output = seda().args(["load", "http://127.0.0.1:1/", "--insecure"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--cacert and --insecure are for an https:// target"), "{stderr}");
    let output = seda().args(["load", "https://127.0.0.1:1/", "--cacert", "/nonexistent/ca.pem"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--cacert /nonexistent/ca.pem"), "{stderr}");
}
