//! Who owns a host-network socket: pods with `hostNetwork: true` share
//! the node's addresses, so their connections look like the node's own.
//! The kernel tells which socket a connection is (`/proc/net/tcp` and
//! friends map the 4-tuple to a socket inode) and which process holds
//! that inode (`/proc/<pid>/fd`); the process's cgroup names its pod.
//! Read once per pass, and only when a new connection of the node needs
//! an owner.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::hash::FastMap;

/// A socket's ends as the kernel's socket tables list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketKey {
    /// 6 TCP, 17 UDP.
    pub protocol: u8,
    /// Local address.
    pub local: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Remote address (unspecified for an unconnected UDP socket).
    pub remote: IpAddr,
    /// Remote port (0 for an unconnected UDP socket).
    pub remote_port: u16,
}

/// Host-network pods and where to find their sockets.
#[derive(Debug, Clone, Default)]
pub struct HostSockets {
    /// The thread's `net` directory (`/proc/thread-self/net`).
    pub net: PathBuf,
    /// The proc mount that shows the node's processes.
    pub proc_root: PathBuf,
    /// Host-network pods: UID and owner id.
    pub pods: Vec<(String, usize)>,
    table: Option<Table>,
}

#[derive(Debug, Clone, Default)]
struct Table {
    sockets: FastMap<SocketKey, u64>,
    owners: FastMap<u64, usize>,
}

/// One address as `/proc/net/tcp` prints it: the raw 32-bit words in the
/// host's byte order, in hexadecimal.
fn parse_address(hex: &str) -> Option<IpAddr> {
    let word = |chunk: &str| u32::from_str_radix(chunk, 16).ok().map(u32::from_be);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut octets = [0u8; 16];
            for i in 0..4 {
                octets[i * 4..i * 4 + 4]
                    .copy_from_slice(&word(&hex[i * 8..i * 8 + 8])?.to_be_bytes());
            }
            let v6 = Ipv6Addr::from(octets);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

fn parse_end(text: &str) -> Option<(IpAddr, u16)> {
    let (address, port) = text.split_once(':')?;
    Some((parse_address(address)?, u16::from_str_radix(port, 16).ok()?))
}

/// The sockets of one table (`tcp`, `udp`, `tcp6`, `udp6`) with their
/// inodes.
pub fn parse_socket_table(text: &str, protocol: u8, out: &mut FastMap<SocketKey, u64>) {
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let (Some(local), Some(remote), Some(inode)) = (
            fields.get(1).and_then(|f| parse_end(f)),
            fields.get(2).and_then(|f| parse_end(f)),
            fields.get(9).and_then(|f| f.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if inode == 0 {
            continue;
        }
        out.insert(
            SocketKey {
                protocol,
                local: local.0,
                local_port: local.1,
                remote: remote.0,
                remote_port: remote.1,
            },
            inode,
        );
    }
}

/// Whether a `/proc/<pid>/cgroup` text names the pod `uid` (kubelet
/// writes it with dashes for cgroupfs, underscores for systemd).
pub fn cgroup_names_pod(text: &str, uid: &str) -> bool {
    !uid.is_empty() && (text.contains(uid) || text.contains(&uid.replace('-', "_")))
}

impl HostSockets {
    /// The sockets of `pods` (UID, owner id), found through `net` (the
    /// reading thread's `/proc/thread-self/net`) and the processes under
    /// `proc_root`.
    pub fn new(net: PathBuf, proc_root: PathBuf, pods: Vec<(String, usize)>) -> HostSockets {
        HostSockets {
            net,
            proc_root,
            pods,
            table: None,
        }
    }

    fn build(&self) -> Table {
        let mut table = Table::default();
        for (file, protocol) in [("tcp", 6), ("tcp6", 6), ("udp", 17), ("udp6", 17)] {
            if let Ok(text) = std::fs::read_to_string(self.net.join(file)) {
                parse_socket_table(&text, protocol, &mut table.sockets);
            }
        }
        let Ok(processes) = std::fs::read_dir(&self.proc_root) else {
            return table;
        };
        for process in processes.flatten() {
            let name = process.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let dir = self.proc_root.join(pid);
            let Ok(cgroup) = std::fs::read_to_string(dir.join("cgroup")) else {
                continue;
            };
            let Some((_, owner)) = self
                .pods
                .iter()
                .find(|(uid, _)| cgroup_names_pod(&cgroup, uid))
            else {
                continue;
            };
            add_inodes(&dir.join("fd"), *owner, &mut table.owners);
        }
        table
    }

    /// The owner of the socket with these ends, if a host-network pod
    /// holds it. The tables are read on the first call after
    /// [`HostSockets::forget`].
    pub fn owner(&mut self, key: &SocketKey) -> Option<usize> {
        if self.pods.is_empty() {
            return None;
        }
        if self.table.is_none() {
            self.table = Some(self.build());
        }
        let table = self.table.as_ref()?;
        let unspecified = match key.local {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        // Connected first; then an unconnected UDP socket, bound to the
        // address or to any.
        let candidates = [
            *key,
            SocketKey {
                remote: unspecified,
                remote_port: 0,
                ..*key
            },
            SocketKey {
                local: unspecified,
                remote: unspecified,
                remote_port: 0,
                ..*key
            },
        ];
        candidates
            .iter()
            .find_map(|k| table.sockets.get(k))
            .and_then(|inode| table.owners.get(inode))
            .copied()
    }

    /// Drops the tables read (sockets come and go between passes).
    pub fn forget(&mut self) {
        self.table = None;
    }
}

fn add_inodes(fd_dir: &Path, owner: usize, out: &mut FastMap<u64, usize>) {
    let Ok(fds) = std::fs::read_dir(fd_dir) else {
        return;
    };
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.insert(inode, owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_tables_parse_in_both_families() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0A01000A:9C40 1402000A:2328 01 00000000:00000000 00:00000000 00000000     0        0 51234 1 0000000000000000 20 4 30 10 -1\n   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1\n   2: garbage\n";
        let mut out = FastMap::default();
        parse_socket_table(tcp, 6, &mut out);
        assert_eq!(out.len(), 1, "inode 0 and garbage are skipped");
        let key = SocketKey {
            protocol: 6,
            local: "10.0.1.10".parse().unwrap(),
            local_port: 40000,
            remote: "10.0.2.20".parse().unwrap(),
            remote_port: 9000,
        };
        assert_eq!(out.get(&key), Some(&51234));
        let tcp6 = "  sl  local_address                         remote_address                        st\n   0: 0000000000000000FFFF00000A01000A:9C41 0000000000000000FFFF00001402000A:2328 01 00000000:00000000 00:00000000 00000000     0        0 777 1\n   1: 000080FE00000000FF00000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1\n";
        let mut out = FastMap::default();
        parse_socket_table(tcp6, 6, &mut out);
        let mapped = SocketKey {
            local_port: 40001,
            ..key
        };
        assert_eq!(out.get(&mapped), Some(&777), "v4-mapped addresses are v4");
        let link_local = SocketKey {
            protocol: 6,
            local: "fe80::ff:0:0".parse().unwrap(),
            local_port: 80,
            remote: "::".parse().unwrap(),
            remote_port: 0,
        };
        assert_eq!(out.get(&link_local), Some(&778));
    }

    #[test]
    fn cgroups_name_pods_with_dashes_or_underscores() {
        let uid = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";
        assert!(cgroup_names_pod(
            "0::/kubepods/besteffort/pod6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b/abc\n",
            uid
        ));
        assert!(cgroup_names_pod(
            "0::/kubepods.slice/kubepods-pod6f1e2d3c_4b5a_4978_8a6b_5c4d3e2f1a0b.slice/cri-containerd-abc.scope\n",
            uid
        ));
        assert!(!cgroup_names_pod("0::/system.slice/kubelet.service\n", uid));
        assert!(!cgroup_names_pod("0::/anything\n", ""));
    }
}
