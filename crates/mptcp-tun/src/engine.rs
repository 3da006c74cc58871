//! The runtime's view of the protocol endpoint (`mptcp_proto::endpoint::Endpoint`):
//! the types the rest of the crate names, and the mapping of endpoint errors onto the
//! `std::io::Error` kinds applications expect from sockets.

use std::io;

pub(crate) use mptcp_proto::endpoint::{
    ConnHandle, Endpoint as Engine, EndpointConfig as EngineConfig, EndpointError,
    Event as EngineEvent, ListenerHandle,
};

/// The `io::ErrorKind` a socket API reports for each endpoint refusal.
pub(crate) fn io_error(e: EndpointError) -> io::Error {
    let kind = match e {
        EndpointError::AddrInUse(_) | EndpointError::TupleInUse { .. } => io::ErrorKind::AddrInUse,
        // Linux: EADDRNOTAVAIL when the ephemeral range is exhausted.
        EndpointError::NoPortAvailable(_) | EndpointError::InvalidLocal(_) => {
            io::ErrorKind::AddrNotAvailable
        }
        EndpointError::AddressFamilyMismatch { .. }
        | EndpointError::InvalidRemote(_)
        | EndpointError::ListenPortZero(_) => io::ErrorKind::InvalidInput,
        EndpointError::TooManyConnections { .. } => io::ErrorKind::OutOfMemory,
        EndpointError::UnknownConnection(_) | EndpointError::UnknownListener(_) => {
            io::ErrorKind::NotConnected
        }
    };
    io::Error::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn endpoint_errors_map_to_socket_error_kinds() {
        let a: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let b: SocketAddr = "[::1]:80".parse().expect("addr");
        let cases = [
            (EndpointError::AddrInUse(a), io::ErrorKind::AddrInUse),
            (
                EndpointError::TupleInUse {
                    local: a,
                    remote: a,
                },
                io::ErrorKind::AddrInUse,
            ),
            (
                EndpointError::NoPortAvailable(a.ip()),
                io::ErrorKind::AddrNotAvailable,
            ),
            (
                EndpointError::InvalidLocal(a),
                io::ErrorKind::AddrNotAvailable,
            ),
            (
                EndpointError::AddressFamilyMismatch {
                    local: a,
                    remote: b,
                },
                io::ErrorKind::InvalidInput,
            ),
            (EndpointError::InvalidRemote(a), io::ErrorKind::InvalidInput),
            (
                EndpointError::ListenPortZero(a),
                io::ErrorKind::InvalidInput,
            ),
            (
                EndpointError::TooManyConnections { limit: 1 },
                io::ErrorKind::OutOfMemory,
            ),
        ];
        for (e, kind) in cases {
            let io = io_error(e);
            assert_eq!(io.kind(), kind, "{e}");
            // The message names the value, as the endpoint's error does.
            assert_eq!(io.to_string(), e.to_string());
        }
    }
}
