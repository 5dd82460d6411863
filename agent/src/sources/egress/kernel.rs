//! The connection-tracking state of the reading thread's network
//! namespace: whether byte accounting is on (and switching it on when
//! allowed), table fill, the kernel's drop counters and the namespace's
//! own addresses. Paths go through `/proc/thread-self` and `/proc/sys`,
//! which follow the calling thread's namespace, not the process's.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::hash::FastSet;

/// Whether connections get byte counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounting {
    /// `nf_conntrack_acct` was already 1.
    On,
    /// The agent switched it on; connections opened before have no
    /// counters and are reported as uncounted.
    EnabledByAgent,
    /// Off, and the agent may not switch it on (or was told not to): no
    /// byte figures are reported.
    Off,
}

impl Accounting {
    /// The `state` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Accounting::On => "on",
            Accounting::EnabledByAgent => "enabled_by_agent",
            Accounting::Off => "off",
        }
    }
}

/// Where the namespace's files are (a test points them elsewhere).
#[derive(Debug, Clone)]
pub struct KernelPaths {
    /// `/proc/sys/net/netfilter`.
    pub sysctl: PathBuf,
    /// `/proc/thread-self/net`.
    pub net: PathBuf,
}

impl KernelPaths {
    /// Under the proc mount `proc_root` (`/proc` or the host's).
    pub fn under(proc_root: &Path) -> KernelPaths {
        KernelPaths {
            sysctl: proc_root.join("sys/net/netfilter"),
            net: proc_root.join("thread-self/net"),
        }
    }
}

fn read_number(path: &Path) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a number", path.display()),
        )
    })
}

/// Reads `nf_conntrack_acct` and, when it is 0 and `enable`, writes 1.
/// The error says why accounting stays off.
pub fn accounting(paths: &KernelPaths, enable: bool) -> (Accounting, Option<io::Error>) {
    let path = paths.sysctl.join("nf_conntrack_acct");
    match read_number(&path) {
        Ok(1) => (Accounting::On, None),
        Ok(_) if enable => match std::fs::write(&path, "1\n") {
            Ok(()) => (Accounting::EnabledByAgent, None),
            Err(error) => (Accounting::Off, Some(error)),
        },
        Ok(_) => (
            Accounting::Off,
            Some(io::Error::other(
                "nf_conntrack_acct is 0 and egress.enable_accounting is false",
            )),
        ),
        Err(error) => (Accounting::Off, Some(error)),
    }
}

/// Entries in the table and its limit.
pub fn table_fill(paths: &KernelPaths) -> io::Result<(u64, u64)> {
    Ok((
        read_number(&paths.sysctl.join("nf_conntrack_count"))?,
        read_number(&paths.sysctl.join("nf_conntrack_max"))?,
    ))
}

/// Connections the kernel refused or evicted because the table was full
/// (`drop` plus `early_drop` of `stat/nf_conntrack`, all CPUs).
pub fn dropped(paths: &KernelPaths) -> io::Result<u64> {
    let text = std::fs::read_to_string(paths.net.join("stat/nf_conntrack"))?;
    Ok(parse_dropped(&text))
}

/// The sum of the `drop` and `early_drop` columns (hexadecimal, one row
/// per CPU).
pub fn parse_dropped(text: &str) -> u64 {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return 0;
    };
    let columns: Vec<usize> = header
        .split_ascii_whitespace()
        .enumerate()
        .filter(|(_, name)| *name == "drop" || *name == "early_drop")
        .map(|(index, _)| index)
        .collect();
    lines
        .flat_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            columns
                .iter()
                .filter_map(move |c| fields.get(*c).and_then(|v| u64::from_str_radix(v, 16).ok()))
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The namespace's local addresses: IPv4 from `fib_trie` (the `/32 host
/// LOCAL` leaves), IPv6 from `if_inet6`.
pub fn local_addresses(paths: &KernelPaths) -> io::Result<FastSet<IpAddr>> {
    let mut out = FastSet::default();
    let trie = std::fs::read_to_string(paths.net.join("fib_trie"))?;
    out.extend(parse_fib_trie(&trie).into_iter().map(IpAddr::V4));
    // No IPv6 in the namespace: no file.
    if let Ok(text) = std::fs::read_to_string(paths.net.join("if_inet6")) {
        out.extend(parse_if_inet6(&text).into_iter().map(IpAddr::V6));
    }
    Ok(out)
}

/// The addresses `fib_trie` marks `/32 host LOCAL`.
pub fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let trimmed = line.trim_start_matches([' ', '|', '+', '-', '`']);
        if let Ok(address) = trimmed.trim().parse::<Ipv4Addr>() {
            last = Some(address);
        } else if trimmed.trim() == "/32 host LOCAL"
            && let Some(address) = last
            && !out.contains(&address)
        {
            out.push(address);
        }
    }
    out
}

/// The addresses of `if_inet6` (32 hex digits first on each line).
pub fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|line| line.split_ascii_whitespace().next())
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(Ipv6Addr::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_trie_local_leaves_are_the_nodes_addresses() {
        let text = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.1.0/24 2 0 2\n        |-- 10.0.1.0\n           /24 link UNICAST\n        |-- 10.0.1.10\n           /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\nLocal:\n  |-- 10.0.1.10\n     /32 host LOCAL\n";
        assert_eq!(
            parse_fib_trie(text),
            vec![Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(127, 0, 0, 1)]
        );
        let v6 = parse_if_inet6(
            "00000000000000000000000000000001 01 80 10 80       lo\nfd000000000000000000000000000010 02 40 00 80 eth0\n",
        );
        assert_eq!(
            v6,
            vec![Ipv6Addr::LOCALHOST, "fd00::10".parse::<Ipv6Addr>().unwrap()]
        );
    }

    #[test]
    fn drops_sum_over_cpus() {
        let text = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n00000010  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000000a 00000001 00000000  00000000 00000000 00000000 00000000\n00000010  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 00000000 00000000  00000000 00000000 00000000 00000000\n";
        assert_eq!(parse_dropped(text), 10 + 1 + 2);
        assert_eq!(parse_dropped(""), 0);
    }

    #[test]
    fn accounting_is_switched_on_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KernelPaths {
            sysctl: dir.path().to_owned(),
            net: dir.path().to_owned(),
        };
        let acct = dir.path().join("nf_conntrack_acct");
        std::fs::write(&acct, "0\n").unwrap();
        assert_eq!(accounting(&paths, false).0, Accounting::Off);
        assert_eq!(accounting(&paths, true).0, Accounting::EnabledByAgent);
        assert_eq!(std::fs::read_to_string(&acct).unwrap(), "1\n");
        assert_eq!(accounting(&paths, true).0, Accounting::On);
        std::fs::remove_file(&acct).unwrap();
        let (state, error) = accounting(&paths, true);
        assert_eq!(state, Accounting::Off);
        assert!(error.is_some());
    }
}
