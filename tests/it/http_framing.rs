//! HTTP/1.1 framing and response writing, sans I/O: exact outcomes for each framing rule and
//! limit, byte-exact responses, and seeded random inputs fed whole and in random splits.

use seda::net::{
    fixed_replies, write_response, BadRequest, Framed, Limits, Reject, Reply, Request, RequestReader, Response, Status,
    Version,
};
use seda::stages::splitmix64;

/// Everything `next_request` yields until it stops at `NeedMore` or `Closed`, that last one included.
fn drain(reader: &mut RequestReader) -> Vec<Framed> {
    let mut out = Vec::new();
    loop {
        let framed = reader.next_request();
        let stop = matches!(framed, Framed::NeedMore | Framed::Closed);
        out.push(framed);
        if stop {
            return out;
        }
    }
}

/// Feeds `input` at the cut points `cuts` (ascending offsets), draining after each piece; returns
/// the requests and rejections in order and the last word (`NeedMore` or `Closed`).
fn frame_split(limits: Limits, input: &[u8], cuts: &[usize]) -> Vec<Framed> {
    let mut reader = RequestReader::new(limits);
    let mut out = Vec::new();
    let mut from = 0;
    for &to in cuts {
        reader.feed(&input[from..to]);
        from = to;
        let mut framed = drain(&mut reader);
        framed.pop();
        out.extend(framed);
    }
    reader.feed(&input[from..]);
    out.extend(drain(&mut reader));
    out
}

fn frame(input: &[u8]) -> Vec<Framed> {
    frame_split(Limits::default(), input, &[])
}

fn request(framed: &Framed) -> &Request {
    match framed {
        Framed::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

#[test]
fn get_keeps_the_connection_alive() {
    let out = frame(b"GET /hello?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n");
    assert_eq!(out.len(), 2);
    let req = request(&out[0]);
    assert_eq!(req.method(), "GET");
    assert_eq!(req.target(), "/hello?x=1");
    assert_eq!(req.version(), Version::Http11);
    assert_eq!(req.headers().collect::<Vec<_>>(), vec![("Host", &b"a"[..]), ("User-Agent", &b"t"[..])]);
    assert_eq!(req.header("user-agent"), Some(&b"t"[..]));
    assert_eq!(req.body(), b"");
    assert!(req.keep_alive());
    assert!(!req.is_head());
    assert_eq!(out[1], Framed::NeedMore);
}

#[test]
fn pipelined_requests_come_out_in_order() {
    let out = frame(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
          GET /3 HTTP/1.1\r\nHost: a\r\n\r\nGET /4 HT",
    );
    let targets: Vec<_> = out[..3].iter().map(|f| request(f).target()).collect();
    assert_eq!(targets, ["/1", "/2", "/3"]);
    assert_eq!(request(&out[1]).body(), b"abc");
    assert_eq!(out[3], Framed::NeedMore);
    assert_eq!(out.len(), 4);
}

#[test]
fn byte_at_a_time_frames_the_same_as_whole() {
    let input: &[u8] =
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi";
    let whole = frame(input);
    let cuts: Vec<usize> = (1..input.len()).collect();
    let split = frame_split(Limits::default(), input, &cuts);
    assert_eq!(split, whole);
    assert_eq!(whole.len(), 3);
    assert_eq!(request(&whole[0]).body(), b"abc");
    assert_eq!(request(&whole[1]).body(), b"hi");
}

#[test]
fn content_length_body_is_read_whole() {
    let mut reader = RequestReader::default();
    reader.feed(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello");
    assert_eq!(reader.next_request(), Framed::NeedMore);
    reader.feed(b" world");
    let out = drain(&mut reader);
    assert_eq!(request(&out[0]).body(), b"hello world");
    assert_eq!(out[1], Framed::NeedMore);
}

#[test]
fn chunked_body_ignores_extensions_and_skips_trailers() {
    let out = frame(
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n1 ; quoted=\"a;b\"\r\n \r\nA\r\n0123456789\r\n\
          0;last\r\nExpires: never\r\nX-Sum: 1\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(request(&out[0]).body(), b"hello 0123456789");
    assert_eq!(request(&out[0]).header("x-sum"), None, "trailers are not headers");
    assert_eq!(request(&out[1]).target(), "/next");
    assert_eq!(out[2], Framed::NeedMore);
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let out = frame(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(
        out,
        [Framed::Reject(Reject::BadRequest(BadRequest::ContentLengthWithTransferEncoding)), Framed::Closed]
    );
    assert_eq!(Reject::BadRequest(BadRequest::ContentLengthWithTransferEncoding).status(), Status::BAD_REQUEST);
}

#[test]
fn invalid_content_length_is_400() {
    let invalid = Framed::Reject(Reject::BadRequest(BadRequest::InvalidContentLength));
    for value in ["abc", "+3", "-1", "3 3", "0x10", "", "1,2"] {
        let input = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\n");
        assert_eq!(frame(input.as_bytes()), [invalid.clone(), Framed::Closed], "{value:?}");
    }
    let differing = frame(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
    assert_eq!(differing, [invalid, Framed::Closed]);
    let agreeing = frame(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc");
    assert_eq!(request(&agreeing[0]).body(), b"abc");
}

#[test]
fn transfer_codings_other_than_chunked() {
    let last_not_chunked = frame(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    assert_eq!(last_not_chunked[0], Framed::Reject(Reject::BadRequest(BadRequest::InvalidTransferEncoding)));
    let gzip_then_chunked = frame(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(gzip_then_chunked, [Framed::Reject(Reject::TransferCodingNotImplemented), Framed::Closed]);
    let http10 = frame(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(http10[0], Framed::Reject(Reject::BadRequest(BadRequest::InvalidTransferEncoding)));
}

#[test]
fn http10_closes_by_default() {
    let out = frame(b"GET / HTTP/1.0\r\n\r\nGET /ignored HTTP/1.0\r\n\r\n");
    assert_eq!(request(&out[0]).version(), Version::Http10);
    assert!(!request(&out[0]).keep_alive());
    assert_eq!(out[1], Framed::Closed, "nothing after a closing request is framed");
    assert_eq!(out.len(), 2);
}

#[test]
fn http10_keep_alive_stays_open() {
    let out = frame(b"GET /1 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n");
    assert!(request(&out[0]).keep_alive());
    assert!(!request(&out[1]).keep_alive());
    assert_eq!(out[2], Framed::Closed);
}

#[test]
fn connection_close_ends_the_connection() {
    let mut reader = RequestReader::default();
    reader.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\nGET /after HTTP/1.1\r\n");
    let out = drain(&mut reader);
    assert!(!request(&out[0]).keep_alive());
    assert_eq!(out[1], Framed::Closed);
    reader.feed(b"Host: a\r\n\r\n");
    assert_eq!(reader.next_request(), Framed::Closed);
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn head_is_noted_on_the_request() {
    let out = frame(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n");
    let req = request(&out[0]);
    assert!(req.is_head());
    assert_eq!(Reply::to(req), Reply { head_only: true, close: false, http10: false });
}

#[test]
fn http11_needs_exactly_one_host() {
    let bad = Framed::Reject(Reject::BadRequest(BadRequest::InvalidHost));
    assert_eq!(frame(b"GET / HTTP/1.1\r\n\r\n")[0], bad);
    assert_eq!(frame(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")[0], bad);
}

#[test]
fn header_section_of_17_kib_is_431() {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    input.extend(vec![b'x'; 17 * 1024]);
    input.extend_from_slice(b"\r\n\r\n");
    assert_eq!(frame(&input), [Framed::Reject(Reject::HeadTooLarge), Framed::Closed]);
    // The same, arriving in pieces with no end of line in sight: cut off at the limit.
    let cuts: Vec<usize> = (1..input.len()).step_by(1000).collect();
    assert_eq!(frame_split(Limits::default(), &input, &cuts), [Framed::Reject(Reject::HeadTooLarge), Framed::Closed]);
    assert_eq!(Reject::HeadTooLarge.response(), fixed_replies::HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn a_request_line_longer_than_the_head_limit_is_414() {
    let mut input = b"\r\nGET /".to_vec();
    input.extend(vec![b'a'; 17 * 1024]);
    input.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(frame(&input), [Framed::Reject(Reject::UriTooLong), Framed::Closed]);
    let cuts: Vec<usize> = (1..input.len()).step_by(1000).collect();
    assert_eq!(frame_split(Limits::default(), &input, &cuts), [Framed::Reject(Reject::UriTooLong), Framed::Closed]);
    assert_eq!(Reject::UriTooLong.status(), Status::URI_TOO_LONG);
    assert_eq!(Reject::UriTooLong.response(), fixed_replies::URI_TOO_LONG);
    // A line without a space is no request line: 431 as before.
    assert_eq!(frame(&vec![b'a'; 17 * 1024]), [Framed::Reject(Reject::HeadTooLarge), Framed::Closed]);
}

#[test]
fn head_of_exactly_the_limit_is_accepted() {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
    let pad = 16 * 1024 - input.len() - 4;
    input.extend(vec![b'p'; pad]);
    input.extend_from_slice(b"\r\n\r\n");
    assert_eq!(input.len(), 16 * 1024);
    assert_eq!(request(&frame(&input)[0]).header("x-pad").unwrap().len(), pad);
    input.insert(20, b'q');
    assert_eq!(frame(&input)[0], Framed::Reject(Reject::HeadTooLarge));
}

#[test]
fn too_many_headers_is_431() {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..64 {
        input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    assert_eq!(frame(&input), [Framed::Reject(Reject::TooManyHeaders), Framed::Closed]);
    assert_eq!(Reject::TooManyHeaders.status(), Status::HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn body_over_the_limit_is_413() {
    let declared = frame(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n");
    assert_eq!(declared, [Framed::Reject(Reject::BodyTooLarge), Framed::Closed]);
    let huge = frame(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n");
    assert_eq!(huge[0], Framed::Reject(Reject::BodyTooLarge));
    // Chunked: refused at the chunk that would go over, before its data.
    let limits = Limits { max_body_bytes: 8, ..Limits::default() };
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n4\r\n";
    assert_eq!(frame_split(limits, input, &[]), [Framed::Reject(Reject::BodyTooLarge), Framed::Closed]);
    assert_eq!(Reject::BodyTooLarge.response(), fixed_replies::CONTENT_TOO_LARGE);
    let exactly = frame_split(limits, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\n12345678", &[]);
    assert_eq!(request(&exactly[0]).body(), b"12345678");
}

#[test]
fn http2_request_line_is_505() {
    assert_eq!(
        frame(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        [Framed::Reject(Reject::VersionNotSupported), Framed::Closed]
    );
    assert_eq!(frame(b"GET / HTTP/3.1\r\nHost: a\r\n\r\n")[0], Framed::Reject(Reject::VersionNotSupported));
    assert_eq!(Reject::VersionNotSupported.response(), fixed_replies::VERSION_NOT_SUPPORTED);
    // Not a version at all: 400.
    assert_eq!(frame(b"GET / HTTP/x\r\n\r\n")[0], Framed::Reject(Reject::BadRequest(BadRequest::Malformed)));
    assert_eq!(frame(b"GET / HTTP/1.x\r\n\r\n")[0], Framed::Reject(Reject::BadRequest(BadRequest::Malformed)));
}

/// RFC 9110 §2.5: a later minor version of HTTP/1 is read as the highest this server has, 1.1,
/// with its rules (a Host header, keep-alive), however the head arrives.
#[test]
fn a_later_minor_version_is_read_as_http_1_1() {
    let input = b"\r\nGET /a HTTP/1.2\r\nHost: h\r\nContent-Length: 2\r\n\r\nokGET /b HTTP/1.9\r\nHost: h\r\n\r\n";
    for split in [&[][..], &[1, 5, 17, 40][..]] {
        let framed = frame_split(Limits::default(), input, split);
        assert_eq!(framed.len(), 3, "{framed:?}");
        let (a, b) = (request(&framed[0]), request(&framed[1]));
        assert_eq!((a.target(), a.version(), a.body(), a.keep_alive()), ("/a", Version::Http11, &b"ok"[..], true));
        assert_eq!((b.target(), b.version()), ("/b", Version::Http11));
        assert_eq!(framed[2], Framed::NeedMore);
    }
    // Without a Host header it is a 1.1 request without one: 400.
    assert_eq!(frame(b"GET / HTTP/1.2\r\n\r\n")[0], Framed::Reject(Reject::BadRequest(BadRequest::InvalidHost)));
}

#[test]
fn garbage_is_400() {
    let malformed = Framed::Reject(Reject::BadRequest(BadRequest::Malformed));
    for input in [&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n"[..], b"GET\r\n\r\n", b"G E T / HTTP/1.1\r\n\r\n"] {
        assert_eq!(frame(input), [malformed.clone(), Framed::Closed], "{input:?}");
    }
    let folded = frame(b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n continued\r\n\r\n");
    assert_eq!(folded[0], malformed);
    let bad_chunk = frame(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_eq!(bad_chunk[0], Framed::Reject(Reject::BadRequest(BadRequest::InvalidChunk)));
    let missing_crlf = frame(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXX");
    assert_eq!(missing_crlf[0], Framed::Reject(Reject::BadRequest(BadRequest::InvalidChunk)));
    assert_eq!(Reject::BadRequest(BadRequest::Malformed).response(), fixed_replies::BAD_REQUEST);
}

#[test]
fn recycled_requests_frame_the_same() {
    let mut reader = RequestReader::default();
    let mut bodies = Vec::new();
    for i in 0..3 {
        reader.feed(format!("POST /{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n{i}").as_bytes());
        let Framed::Request(req) = reader.next_request() else { panic!() };
        bodies.push((req.target().to_owned(), req.body().to_vec(), req.headers().count()));
        reader.recycle(req);
    }
    assert_eq!(bodies[2], ("/2".to_owned(), b"2".to_vec(), 2));
    assert_eq!(bodies.len(), 3);
}

#[test]
fn read_from_fills_the_buffer() {
    let mut reader = RequestReader::default();
    let mut source: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(reader.read_from(&mut source, 10).unwrap(), 10);
    assert_eq!(reader.next_request(), Framed::NeedMore);
    assert_eq!(reader.read_from(&mut source, 4096).unwrap(), 17);
    assert_eq!(request(&reader.next_request()).target(), "/");
    assert_eq!(reader.read_from(&mut source, 4096).unwrap(), 0);
}

fn written(response: &Response<'_>, reply: Reply) -> Vec<u8> {
    let mut out = Vec::new();
    write_response(&mut out, response, reply);
    out
}

#[test]
fn response_with_body_and_headers_is_byte_exact() {
    let response = Response { status: Status::OK, headers: &[("Content-Type", b"text/plain")], body: b"hello" };
    assert_eq!(
        written(&response, Reply::default()),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    );
    assert_eq!(
        written(&response, Reply { close: true, ..Reply::default() }),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    );
    assert_eq!(
        written(&response, Reply { http10: true, ..Reply::default() }),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"
    );
}

#[test]
fn head_response_has_headers_only() {
    let response = Response::new(Status::NOT_FOUND, b"no such thing");
    assert_eq!(
        written(&response, Reply { head_only: true, ..Reply::default() }),
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\n"
    );
}

#[test]
fn response_503_is_byte_exact() {
    let response = Response { status: Status::SERVICE_UNAVAILABLE, headers: &[("Retry-After", b"1")], body: b"" };
    let expected = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(written(&response, Reply::default()), expected);
    assert_eq!(fixed_replies::service_unavailable(Reply::default()), expected);
    assert_eq!(
        fixed_replies::service_unavailable(Reply { close: true, ..Reply::default() }),
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn writer_owns_the_framing_headers() {
    let response = Response {
        status: Status::NO_CONTENT,
        headers: &[
            ("Content-Length", b"99"),
            ("Transfer-Encoding", b"chunked"),
            ("X-Split", b"a\r\nSet-Cookie: evil"),
            ("Bad Name", b"x"),
            ("X-Ok", b"1"),
        ],
        body: b"ignored",
    };
    assert_eq!(written(&response, Reply::default()), b"HTTP/1.1 204 No Content\r\nX-Ok: 1\r\n\r\n");
    let unnamed = Response::new(Status::new(299).unwrap(), b"");
    assert_eq!(written(&unnamed, Reply::default()), b"HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn pipelined_responses_append_to_one_buffer() {
    let mut out = Vec::new();
    write_response(&mut out, &Response::new(Status::OK, b"a"), Reply::default());
    write_response(&mut out, &Response::new(Status::OK, b"b"), Reply { close: true, ..Reply::default() });
    assert_eq!(
        out,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nb"
    );
}

// ---- seeded random inputs -------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        splitmix64(self.0)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Ascending cut points in `0..=len`, some repeated (an empty read).
    fn cuts(&mut self, len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = (0..self.below(12)).map(|_| self.below(len + 1)).collect();
        if self.below(8) == 0 {
            cuts.extend(0..=len);
        }
        cuts.sort_unstable();
        cuts
    }
}

/// One valid request, and what it must frame to: (method, target, body, keep_alive).
fn valid_request(rng: &mut Rng, last: bool) -> (Vec<u8>, (String, String, Vec<u8>, bool)) {
    let method = *rng.pick(&["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"]);
    let target = format!("/{}?q={}", rng.below(1000), rng.below(10));
    let http10 = rng.below(5) == 0;
    let mut head = format!("{method} {target} HTTP/1.{}\r\n", if http10 { 0 } else { 1 });
    if !http10 || rng.below(2) == 0 {
        head.push_str(&format!("{}: example.com\r\n", rng.pick(&["Host", "host", "HOST"])));
    }
    for i in 0..rng.below(5) {
        head.push_str(&format!("X-H{i}:{}v{}\t\r\n", rng.pick(&["", " ", "  "]), rng.below(100)));
    }
    let close = last && rng.below(2) == 0;
    match (http10, close) {
        (true, false) => head.push_str("Connection: keep-alive\r\n"),
        (false, true) => head.push_str("Connection: close\r\n"),
        _ => {}
    }
    let body: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
    let mut bytes = Vec::new();
    let chunked = !http10 && rng.below(2) == 0;
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        bytes.extend_from_slice(head.as_bytes());
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len());
            let ext = *rng.pick(&["", ";a", ";a=b", " ;x=\"y\""]);
            bytes.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
            bytes.extend_from_slice(&rest[..n]);
            bytes.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        bytes.extend_from_slice(b"0\r\n");
        for i in 0..rng.below(3) {
            bytes.extend_from_slice(format!("Trailer-{i}: t\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
    } else {
        if !body.is_empty() || rng.below(2) == 0 {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        bytes.extend_from_slice(head.as_bytes());
        let sent = if head.contains("Content-Length") { &body[..] } else { &[][..] };
        bytes.extend_from_slice(sent);
    }
    let framed_body = if chunked || head.contains("Content-Length") { body } else { Vec::new() };
    (bytes, (method.to_owned(), target, framed_body, !close))
}

fn summary(framed: &Framed) -> (String, String, Vec<u8>, bool) {
    let req = request(framed);
    (req.method().to_owned(), req.target().to_owned(), req.body().to_vec(), req.keep_alive())
}

#[test]
fn valid_pipelined_input_frames_the_same_at_any_split() {
    let mut rng = Rng(7);
    for case in 0..2000 {
        let count = 1 + rng.below(4);
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..count {
            let (bytes, summary) = valid_request(&mut rng, i + 1 == count);
            input.extend_from_slice(&bytes);
            expected.push(summary);
        }
        let whole = frame(&input);
        let (requests, last) = whole.split_at(whole.len() - 1);
        let got: Vec<_> = requests.iter().map(summary).collect();
        assert_eq!(got, expected, "case {case}: {}", String::from_utf8_lossy(&input));
        let closes = !expected.last().unwrap().3;
        assert_eq!(last[0], if closes { Framed::Closed } else { Framed::NeedMore }, "case {case}");
        let cuts = rng.cuts(input.len());
        assert_eq!(frame_split(Limits::default(), &input, &cuts), whole, "case {case} cut at {cuts:?}");
    }
}

/// Valid requests with bytes flipped, inserted, cut and spliced, plus plain noise.
fn mangled(rng: &mut Rng) -> Vec<u8> {
    if rng.below(10) == 0 {
        return (0..rng.below(200)).map(|_| rng.next() as u8).collect();
    }
    let mut input = Vec::new();
    for i in 0..1 + rng.below(3) {
        input.extend(valid_request(rng, i == 2).0);
    }
    const PIECES: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b":",
        b";",
        b"0\r\n",
        b"ffffffffffffffffff",
        b"Content-Length: 5\r\n",
        b"Content-Length: x\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"HTTP/2.0",
        b"HTTP/1.1\r\n",
        b"\x00",
        b"\xff",
    ];
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(4) {
            0 if at < input.len() => input[at] = rng.next() as u8,
            1 => {
                let piece = *rng.pick(PIECES);
                input.splice(at..at, piece.iter().copied());
            }
            2 => input.truncate(at),
            _ => {
                let end = (at + rng.below(20)).min(input.len());
                input.drain(at..end);
            }
        }
    }
    input
}

#[test]
fn arbitrary_input_at_any_split_ends_cleanly_and_the_same() {
    let mut rng = Rng(11);
    let tight = Limits { max_head_bytes: 96, max_headers: 4, max_body_bytes: 24, max_chunk_line_bytes: 12 };
    for case in 0..20_000 {
        let input = mangled(&mut rng);
        let limits = if case % 2 == 0 { Limits::default() } else { tight };
        let whole = frame_split(limits, &input, &[]);
        // Requests, then exactly one last word: NeedMore, Closed, or a rejection and then Closed.
        let (last, rest) = whole.split_last().unwrap();
        match last {
            Framed::NeedMore => assert!(rest.iter().all(|f| matches!(f, Framed::Request(r) if r.keep_alive()))),
            Framed::Closed => {
                let (end, requests) = rest.split_last().expect("something came before Closed");
                assert!(requests.iter().all(|f| matches!(f, Framed::Request(r) if r.keep_alive())));
                assert!(matches!(end, Framed::Reject(_) | Framed::Request(_)), "case {case}: {whole:?}");
                if let Framed::Request(r) = end {
                    assert!(!r.keep_alive());
                }
            }
            other => panic!("case {case}: ended in {other:?}"),
        }
        let cuts = rng.cuts(input.len());
        assert_eq!(
            frame_split(limits, &input, &cuts),
            whole,
            "case {case} cut at {cuts:?}: {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}
