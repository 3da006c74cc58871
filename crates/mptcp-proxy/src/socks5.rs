//! The server side of a SOCKS5 handshake (RFC 1928) with optional username/password
//! authentication (RFC 1929), sans IO.
//!
//! Feed whatever bytes arrived to [`Handshake::receive`]; write whatever
//! [`Handshake::take_output`] returns to the client. The handshake ends with a CONNECT
//! [`Request`]; the caller then sends [`reply`] with the outcome. On a protocol error
//! `receive` returns the error and has already queued the answer RFC 1928 prescribes
//! (method 0xFF, auth status 0x01, or a reply code): write it, then close.
//!
//! ```
//! use mptcp_proxy::socks5::{Auth, Handshake, Progress};
//! let mut hs = Handshake::new(Auth::None);
//! // greeting: version 5, one method, "no authentication"
//! assert_eq!(hs.receive(&[5, 1, 0]).unwrap(), (3, Progress::NeedMore));
//! assert_eq!(hs.take_output(), [5, 0]);
//! // CONNECT example.org:80
//! let mut req = vec![5, 1, 0, 3, 11];
//! req.extend_from_slice(b"example.org");
//! req.extend_from_slice(&80u16.to_be_bytes());
//! let (used, progress) = hs.receive(&req).unwrap();
//! assert_eq!(used, req.len());
//! let Progress::Request(r) = progress else { panic!() };
//! assert_eq!(r.target.to_string(), "example.org:80");
//! ```
//!
//! Only CONNECT is served. BIND and UDP ASSOCIATE are answered with "command not
//! supported" (0x07), unknown address types with "address type not supported" (0x08).

use std::net::SocketAddr;

use crate::target::{AddrError, TargetAddr};

/// RFC 1928 §3: the protocol version byte.
pub const VERSION: u8 = 0x05;
/// RFC 1929 §2: the sub-negotiation version byte.
pub const AUTH_VERSION: u8 = 0x01;

/// RFC 1928 §3 method numbers.
pub const METHOD_NO_AUTH: u8 = 0x00;
pub const METHOD_USER_PASS: u8 = 0x02;
pub const METHOD_NONE_ACCEPTABLE: u8 = 0xff;

/// RFC 1928 §4 commands.
pub const CMD_CONNECT: u8 = 0x01;
pub const CMD_BIND: u8 = 0x02;
pub const CMD_UDP_ASSOCIATE: u8 = 0x03;

/// The longest message a client sends: an RFC 1929 request (1 + 1 + 255 + 1 + 255).
/// A read buffer this large always holds at least one whole message.
pub const MAX_MESSAGE: usize = 513;

/// RFC 1928 §6 reply codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReplyCode {
    Succeeded = 0x00,
    GeneralFailure = 0x01,
    NotAllowed = 0x02,
    NetworkUnreachable = 0x03,
    HostUnreachable = 0x04,
    ConnectionRefused = 0x05,
    TtlExpired = 0x06,
    CommandNotSupported = 0x07,
    AddressTypeNotSupported = 0x08,
}

impl ReplyCode {
    /// The code for a byte; values RFC 1928 leaves unassigned read as general failure.
    pub fn from_byte(b: u8) -> ReplyCode {
        match b {
            0x00 => ReplyCode::Succeeded,
            0x02 => ReplyCode::NotAllowed,
            0x03 => ReplyCode::NetworkUnreachable,
            0x04 => ReplyCode::HostUnreachable,
            0x05 => ReplyCode::ConnectionRefused,
            0x06 => ReplyCode::TtlExpired,
            0x07 => ReplyCode::CommandNotSupported,
            0x08 => ReplyCode::AddressTypeNotSupported,
            _ => ReplyCode::GeneralFailure,
        }
    }

    /// The code that describes a failed connect to the target.
    pub fn from_io_error(e: &std::io::Error) -> ReplyCode {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => ReplyCode::ConnectionRefused,
            K::NetworkUnreachable => ReplyCode::NetworkUnreachable,
            // A name that does not resolve, an unreachable host and a connect that
            // times out all mean "that host cannot be reached from here".
            K::HostUnreachable | K::TimedOut | K::NotFound => ReplyCode::HostUnreachable,
            K::PermissionDenied => ReplyCode::NotAllowed,
            _ => ReplyCode::GeneralFailure,
        }
    }

    /// A short description for logs.
    pub fn describe(self) -> &'static str {
        match self {
            ReplyCode::Succeeded => "succeeded",
            ReplyCode::GeneralFailure => "general failure",
            ReplyCode::NotAllowed => "not allowed by ruleset",
            ReplyCode::NetworkUnreachable => "network unreachable",
            ReplyCode::HostUnreachable => "host unreachable",
            ReplyCode::ConnectionRefused => "connection refused",
            ReplyCode::TtlExpired => "TTL expired",
            ReplyCode::CommandNotSupported => "command not supported",
            ReplyCode::AddressTypeNotSupported => "address type not supported",
        }
    }
}

/// Which authentication the server requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Method 0x00: anyone may connect.
    None,
    /// Method 0x02 (RFC 1929) with these credentials; clients that do not offer it are
    /// refused.
    UserPass { user: Vec<u8>, password: Vec<u8> },
}

/// A CONNECT request that passed the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub target: TargetAddr,
}

/// What [`Handshake::receive`] achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for more bytes from the client.
    NeedMore,
    /// The handshake is complete: connect to the target and send a [`reply`].
    Request(Request),
}

/// Why a handshake failed. The answer to send (if any) is already queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("version {0:#04x} in the greeting: SOCKS5 is 0x05")]
    BadVersion(u8),
    #[error("greeting offers no methods (NMETHODS 0)")]
    NoMethods,
    #[error("none of the offered methods {offered:02x?} is acceptable (want {wanted:#04x})")]
    NoAcceptableMethod { offered: Vec<u8>, wanted: u8 },
    #[error("version {0:#04x} in the username/password request: RFC 1929 is 0x01")]
    BadAuthVersion(u8),
    #[error("empty {0} in the username/password request")]
    EmptyCredential(&'static str),
    #[error("username/password rejected for user {user:?}")]
    BadCredentials { user: String },
    #[error("version {0:#04x} in the request: SOCKS5 is 0x05")]
    BadRequestVersion(u8),
    #[error("command {0:#04x} not supported: only CONNECT (0x01)")]
    UnsupportedCommand(u8),
    #[error("bad destination address: {0}")]
    Address(#[from] AddrError),
    #[error("the handshake already ended")]
    Finished,
}

impl HandshakeError {
    /// The reply code sent to the client for this error, when the error happened at
    /// the request stage.
    pub fn reply_code(&self) -> Option<ReplyCode> {
        match self {
            HandshakeError::BadRequestVersion(_) => Some(ReplyCode::GeneralFailure),
            HandshakeError::UnsupportedCommand(_) => Some(ReplyCode::CommandNotSupported),
            HandshakeError::Address(AddrError::UnknownType(_)) => {
                Some(ReplyCode::AddressTypeNotSupported)
            }
            HandshakeError::Address(_) => Some(ReplyCode::GeneralFailure),
            HandshakeError::BadVersion(_)
            | HandshakeError::NoMethods
            | HandshakeError::NoAcceptableMethod { .. }
            | HandshakeError::BadAuthVersion(_)
            | HandshakeError::EmptyCredential(_)
            | HandshakeError::BadCredentials { .. }
            | HandshakeError::Finished => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Greeting,
    Auth,
    Request,
    Done,
    Failed,
}

/// One client's handshake.
#[derive(Debug)]
pub struct Handshake {
    auth: Auth,
    state: State,
    out: Vec<u8>,
}

impl Handshake {
    pub fn new(auth: Auth) -> Handshake {
        Handshake {
            auth,
            state: State::Greeting,
            out: Vec::new(),
        }
    }

    /// Processes bytes from the client. Returns how many bytes of `input` were used
    /// (whole messages only; keep the rest and pass it again with more) and whether the
    /// request is complete. Bytes after the request belong to the data stream.
    pub fn receive(&mut self, input: &[u8]) -> Result<(usize, Progress), HandshakeError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let step = match self.state {
                State::Greeting => self.greeting(rest),
                State::Auth => self.authenticate(rest),
                State::Request => self.request(rest),
                State::Done | State::Failed => Err(HandshakeError::Finished),
            };
            match step {
                Ok(None) => return Ok((used, Progress::NeedMore)),
                Ok(Some((n, None))) => used += n,
                Ok(Some((n, Some(request)))) => {
                    return Ok((used + n, Progress::Request(request)));
                }
                Err(e) => {
                    if self.state != State::Done {
                        self.state = State::Failed;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Bytes to send to the client (method selection, auth status, error replies).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// RFC 1928 §3: VER | NMETHODS | METHODS.
    fn greeting(&mut self, b: &[u8]) -> Step {
        let &[ver, n, ..] = b else {
            return if b.first().is_some_and(|&v| v != VERSION) {
                Err(HandshakeError::BadVersion(b[0]))
            } else {
                Ok(None)
            };
        };
        if ver != VERSION {
            // Not SOCKS5 (perhaps SOCKS4 or HTTP): no answer we could send is understood.
            return Err(HandshakeError::BadVersion(ver));
        }
        if n == 0 {
            self.out
                .extend_from_slice(&[VERSION, METHOD_NONE_ACCEPTABLE]);
            return Err(HandshakeError::NoMethods);
        }
        let total = 2 + usize::from(n);
        let Some(methods) = b.get(2..total) else {
            return Ok(None);
        };
        let wanted = match self.auth {
            Auth::None => METHOD_NO_AUTH,
            Auth::UserPass { .. } => METHOD_USER_PASS,
        };
        if !methods.contains(&wanted) {
            self.out
                .extend_from_slice(&[VERSION, METHOD_NONE_ACCEPTABLE]);
            return Err(HandshakeError::NoAcceptableMethod {
                offered: methods.to_vec(),
                wanted,
            });
        }
        self.out.extend_from_slice(&[VERSION, wanted]);
        self.state = match self.auth {
            Auth::None => State::Request,
            Auth::UserPass { .. } => State::Auth,
        };
        Ok(Some((total, None)))
    }

    /// RFC 1929 §2: VER | ULEN | UNAME | PLEN | PASSWD.
    fn authenticate(&mut self, b: &[u8]) -> Step {
        let Some(&ver) = b.first() else {
            return Ok(None);
        };
        if ver != AUTH_VERSION {
            self.out.extend_from_slice(&[AUTH_VERSION, 0x01]);
            return Err(HandshakeError::BadAuthVersion(ver));
        }
        let Some(&ulen) = b.get(1) else {
            return Ok(None);
        };
        let ulen = usize::from(ulen);
        let Some(&plen) = b.get(2 + ulen) else {
            return Ok(None);
        };
        let plen = usize::from(plen);
        let total = 3 + ulen + plen;
        if b.len() < total {
            return Ok(None);
        }
        let user = &b[2..2 + ulen];
        let password = &b[3 + ulen..total];
        let failure = if ulen == 0 {
            Some(HandshakeError::EmptyCredential("username"))
        } else if plen == 0 {
            Some(HandshakeError::EmptyCredential("password"))
        } else {
            match &self.auth {
                Auth::UserPass {
                    user: u,
                    password: p,
                } if ct_eq(u, user) & ct_eq(p, password) => None,
                Auth::UserPass { .. } | Auth::None => Some(HandshakeError::BadCredentials {
                    user: String::from_utf8_lossy(user).into_owned(),
                }),
            }
        };
        // RFC 1929 §2: a non-zero STATUS means failure, and the server closes.
        if let Some(e) = failure {
            self.out.extend_from_slice(&[AUTH_VERSION, 0x01]);
            return Err(e);
        }
        self.out.extend_from_slice(&[AUTH_VERSION, 0x00]);
        self.state = State::Request;
        Ok(Some((total, None)))
    }

    /// RFC 1928 §4: VER | CMD | RSV | ATYP | DST.ADDR | DST.PORT.
    fn request(&mut self, b: &[u8]) -> Step {
        let Some(&ver) = b.first() else {
            return Ok(None);
        };
        if ver != VERSION {
            self.fail(ReplyCode::GeneralFailure);
            return Err(HandshakeError::BadRequestVersion(ver));
        }
        // RSV (b[2]) must be 0 per RFC 1928 but carries nothing; like most servers we
        // do not reject a client for it.
        let Some(&cmd) = b.get(1) else {
            return Ok(None);
        };
        if b.len() < 3 {
            return Ok(None);
        }
        let (target, len) = match TargetAddr::decode(&b[3..]) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(None),
            Err(e) => {
                let code = match e {
                    AddrError::UnknownType(_) => ReplyCode::AddressTypeNotSupported,
                    AddrError::EmptyDomain
                    | AddrError::DomainTooLong(_)
                    | AddrError::BadDomainByte { .. }
                    | AddrError::Syntax(_) => ReplyCode::GeneralFailure,
                };
                self.fail(code);
                return Err(e.into());
            }
        };
        match cmd {
            CMD_CONNECT => {
                self.state = State::Done;
                Ok(Some((3 + len, Some(Request { target }))))
            }
            other => {
                self.fail(ReplyCode::CommandNotSupported);
                Err(HandshakeError::UnsupportedCommand(other))
            }
        }
    }

    fn fail(&mut self, code: ReplyCode) {
        self.out.extend_from_slice(&reply(code, None));
    }
}

type Step = Result<Option<(usize, Option<Request>)>, HandshakeError>;

/// Compares without an early exit, so the time taken says nothing about how much of a
/// credential matched.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 1928 §6: VER | REP | RSV | ATYP | BND.ADDR | BND.PORT. Without a bound address
/// the reply carries 0.0.0.0:0 (clients of CONNECT do not use it).
pub fn reply(code: ReplyCode, bound: Option<SocketAddr>) -> Vec<u8> {
    let bound = bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut out = vec![VERSION, code as u8, 0x00];
    TargetAddr::Ip(bound).encode(&mut out);
    out
}

/// The client's CONNECT request for `target` (RFC 1928 §4), for tests and tools.
pub fn client_connect_request(target: &TargetAddr) -> Vec<u8> {
    let mut out = vec![VERSION, CMD_CONNECT, 0x00];
    target.encode(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn userpass() -> Auth {
        Auth::UserPass {
            user: b"alice".to_vec(),
            password: b"s3cret".to_vec(),
        }
    }

    fn auth_msg(user: &[u8], pass: &[u8]) -> Vec<u8> {
        let mut m = vec![AUTH_VERSION, user.len() as u8];
        m.extend_from_slice(user);
        m.push(pass.len() as u8);
        m.extend_from_slice(pass);
        m
    }

    #[test]
    fn no_auth_connect_ipv4_then_data_is_left_over() {
        let mut hs = Handshake::new(Auth::None);
        let mut input = vec![5, 2, 0x02, 0x00];
        input.extend_from_slice(&[5, 1, 0, 1, 192, 0, 2, 7, 0, 80]);
        input.extend_from_slice(b"GET /");
        let (used, p) = hs.receive(&input).unwrap();
        assert_eq!(used, 14);
        assert_eq!(
            p,
            Progress::Request(Request {
                target: TargetAddr::Ip("192.0.2.7:80".parse().unwrap())
            })
        );
        assert_eq!(hs.take_output(), [5, 0]);
        assert_eq!(&input[used..], b"GET /");
        assert_eq!(hs.receive(&[]), Err(HandshakeError::Finished));
    }

    #[test]
    fn byte_at_a_time_gives_the_same_result() {
        let mut input = vec![5, 1, 2];
        input.extend(auth_msg(b"alice", b"s3cret"));
        input.extend_from_slice(&[5, 1, 0, 4]);
        input.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        input.extend_from_slice(&[0x01, 0xbb]);
        let mut hs = Handshake::new(userpass());
        let mut pending = Vec::new();
        let mut result = None;
        for &b in &input {
            pending.push(b);
            let (used, p) = hs.receive(&pending).unwrap();
            pending.drain(..used);
            if let Progress::Request(r) = p {
                result = Some(r);
            }
        }
        assert!(pending.is_empty());
        assert_eq!(
            result.unwrap().target,
            TargetAddr::Ip("[2001:db8::1]:443".parse().unwrap())
        );
        assert_eq!(hs.take_output(), [5, 2, 1, 0]);
    }

    #[test]
    fn wrong_password_gets_status_1() {
        let mut hs = Handshake::new(userpass());
        hs.receive(&[5, 1, 2]).unwrap();
        let err = hs.receive(&auth_msg(b"alice", b"guess")).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::BadCredentials {
                user: "alice".into()
            }
        );
        assert_eq!(hs.take_output(), [5, 2, 1, 1]);
        assert_eq!(hs.receive(&[5]), Err(HandshakeError::Finished));
    }

    #[test]
    fn client_without_the_required_method_gets_ff() {
        let mut hs = Handshake::new(userpass());
        let err = hs.receive(&[5, 1, 0]).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::NoAcceptableMethod {
                offered: vec![0],
                wanted: 2
            }
        );
        assert_eq!(hs.take_output(), [5, 0xff]);
        let mut hs = Handshake::new(Auth::None);
        assert_eq!(hs.receive(&[5, 0]), Err(HandshakeError::NoMethods));
        assert_eq!(hs.take_output(), [5, 0xff]);
    }

    #[test]
    fn not_socks5_is_closed_without_an_answer() {
        let mut hs = Handshake::new(Auth::None);
        assert_eq!(
            hs.receive(b"GET / HTTP/1.1"),
            Err(HandshakeError::BadVersion(b'G'))
        );
        assert!(hs.take_output().is_empty());
        let mut hs = Handshake::new(Auth::None);
        assert_eq!(hs.receive(&[4]), Err(HandshakeError::BadVersion(4)));
    }

    #[test]
    fn unknown_address_type_gets_reply_8() {
        let mut hs = Handshake::new(Auth::None);
        hs.receive(&[5, 1, 0]).unwrap();
        hs.take_output();
        let err = hs.receive(&[5, 1, 0, 0x09, 1, 2, 3, 4]).unwrap_err();
        assert_eq!(err, HandshakeError::Address(AddrError::UnknownType(9)));
        assert_eq!(err.reply_code(), Some(ReplyCode::AddressTypeNotSupported));
        assert_eq!(hs.take_output(), [5, 8, 0, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn bind_and_udp_get_reply_7() {
        for cmd in [CMD_BIND, CMD_UDP_ASSOCIATE, 0x7f] {
            let mut hs = Handshake::new(Auth::None);
            hs.receive(&[5, 1, 0]).unwrap();
            hs.take_output();
            let err = hs.receive(&[5, cmd, 0, 1, 10, 0, 0, 1, 0, 80]).unwrap_err();
            assert_eq!(err, HandshakeError::UnsupportedCommand(cmd));
            assert_eq!(hs.take_output(), [5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
        }
    }

    #[test]
    fn empty_domain_and_bad_request_version_get_general_failure() {
        let mut hs = Handshake::new(Auth::None);
        hs.receive(&[5, 1, 0]).unwrap();
        hs.take_output();
        assert_eq!(
            hs.receive(&[5, 1, 0, 3, 0, 0, 80]),
            Err(HandshakeError::Address(AddrError::EmptyDomain))
        );
        assert_eq!(hs.take_output()[..2], [5, 1]);
        let mut hs = Handshake::new(Auth::None);
        hs.receive(&[5, 1, 0]).unwrap();
        hs.take_output();
        assert_eq!(
            hs.receive(&[4, 1, 0, 1]),
            Err(HandshakeError::BadRequestVersion(4))
        );
        assert_eq!(hs.take_output()[..2], [5, 1]);
    }

    #[test]
    fn reply_encodes_bound_address() {
        assert_eq!(
            reply(
                ReplyCode::ConnectionRefused,
                Some("[::1]:1080".parse().unwrap())
            ),
            [
                5, 5, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x04, 0x38
            ]
        );
        for b in 0..=255u8 {
            let code = ReplyCode::from_byte(b);
            if b <= 8 {
                assert_eq!(code as u8, b);
            } else {
                assert_eq!(code, ReplyCode::GeneralFailure);
            }
        }
    }

    #[test]
    fn io_errors_map_to_reply_codes() {
        use std::io::{Error, ErrorKind as K};
        let cases = [
            (K::ConnectionRefused, ReplyCode::ConnectionRefused),
            (K::HostUnreachable, ReplyCode::HostUnreachable),
            (K::NetworkUnreachable, ReplyCode::NetworkUnreachable),
            (K::TimedOut, ReplyCode::HostUnreachable),
            (K::Other, ReplyCode::GeneralFailure),
        ];
        for (kind, code) in cases {
            assert_eq!(
                ReplyCode::from_io_error(&Error::from(kind)),
                code,
                "{kind:?}"
            );
        }
    }

    proptest! {
        /// Any bytes, in any split: never a panic, never more consumed than given, and
        /// an error always leaves the handshake finished.
        #[test]
        fn arbitrary_input_never_panics(
            input in proptest::collection::vec(any::<u8>(), 0..700),
            split in 0usize..700,
            with_auth in any::<bool>(),
        ) {
            let mut hs = Handshake::new(if with_auth { userpass() } else { Auth::None });
            let split = split.min(input.len());
            let mut pending = input[..split].to_vec();
            let mut chunks = vec![input[split..].to_vec()];
            chunks.insert(0, Vec::new());
            for chunk in chunks {
                pending.extend_from_slice(&chunk);
                match hs.receive(&pending) {
                    Ok((used, p)) => {
                        prop_assert!(used <= pending.len());
                        pending.drain(..used);
                        // A read buffer of MAX_MESSAGE bytes always has room to finish
                        // the message being waited for.
                        if p == Progress::NeedMore {
                            prop_assert!(pending.len() < MAX_MESSAGE, "{} bytes pending", pending.len());
                        }
                    }
                    Err(_) => {
                        prop_assert_eq!(hs.receive(&[5, 1, 0]), Err(HandshakeError::Finished));
                        break;
                    }
                }
            }
        }

        /// Well-formed sequences always produce exactly the encoded target.
        #[test]
        fn valid_requests_round_trip(
            host in "[a-z][a-z0-9.-]{0,60}",
            port in any::<u16>(),
            ip in any::<[u8; 4]>(),
            pick in 0u8..3,
        ) {
            let target = match pick {
                0 => TargetAddr::domain(&host, port).unwrap(),
                1 => TargetAddr::Ip(SocketAddr::from((ip, port))),
                _ => TargetAddr::Ip(SocketAddr::from(([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, ip[0], ip[1], ip[2], ip[3]], port))),
            };
            let mut input = vec![5, 1, 0];
            input.extend(client_connect_request(&target));
            let mut hs = Handshake::new(Auth::None);
            let (used, p) = hs.receive(&input).unwrap();
            prop_assert_eq!(used, input.len());
            prop_assert_eq!(p, Progress::Request(Request { target }));
        }
    }
}
