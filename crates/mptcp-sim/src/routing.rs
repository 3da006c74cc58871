//! Static routes: longest-prefix match per node, and shortest-path host routes computed
//! from the topology so scenarios need not list routes by hand.

use std::net::IpAddr;

/// A route: packets for `prefix/len` leave on interface `iface` of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) prefix: IpAddr,
    pub(crate) len: u8,
    pub(crate) iface: usize,
}

impl Route {
    pub(crate) fn matches(&self, addr: IpAddr) -> bool {
        match (self.prefix, addr) {
            (IpAddr::V4(p), IpAddr::V4(a)) => prefix_eq(
                u128::from(u32::from(p)),
                u128::from(u32::from(a)),
                self.len,
                32,
            ),
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                prefix_eq(u128::from(p), u128::from(a), self.len, 128)
            }
            _ => false,
        }
    }
}

fn prefix_eq(p: u128, a: u128, len: u8, bits: u32) -> bool {
    let len = u32::from(len).min(bits);
    if len == 0 {
        return true;
    }
    let shift = bits - len;
    (p >> shift) == (a >> shift)
}

/// The interface of the longest matching route; the first one listed wins a tie.
pub(crate) fn lookup(routes: &[Route], dst: IpAddr) -> Option<usize> {
    let mut best: Option<&Route> = None;
    for route in routes {
        if route.matches(dst) && best.is_none_or(|b| route.len > b.len) {
            best = Some(route);
        }
    }
    best.map(|r| r.iface)
}

/// Maximum prefix length of the address family of `addr`.
pub(crate) fn host_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, len: u8, iface: usize) -> Route {
        Route {
            prefix: prefix.parse().unwrap(),
            len,
            iface,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let routes = [
            route("0.0.0.0", 0, 0),
            route("10.0.0.0", 8, 1),
            route("10.1.0.0", 16, 2),
            route("2001:db8::", 32, 3),
        ];
        assert_eq!(lookup(&routes, "10.1.2.3".parse().unwrap()), Some(2));
        assert_eq!(lookup(&routes, "10.2.2.3".parse().unwrap()), Some(1));
        assert_eq!(lookup(&routes, "192.0.2.1".parse().unwrap()), Some(0));
        assert_eq!(lookup(&routes, "2001:db8::7".parse().unwrap()), Some(3));
        assert_eq!(lookup(&routes, "2001:db9::7".parse().unwrap()), None);
        assert!(route("10.0.0.1", 32, 0).matches("10.0.0.1".parse().unwrap()));
        assert!(!route("10.0.0.1", 32, 0).matches("10.0.0.2".parse().unwrap()));
    }
}
