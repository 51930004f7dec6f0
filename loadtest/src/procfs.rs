//! The server's CPU time and resident memory, read from /proc/PID.

use std::fs;
use std::io;

/// utime + stime in seconds, from /proc/PID/stat (fields 14 and 15, counted in clock ticks).
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    cpu_from_stat(&stat, clock_ticks())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/PID/stat"))
}

/// VmRSS in bytes, from /proc/PID/status.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "VmRSS:")
}

/// VmHWM (the peak of VmRSS) in bytes, from /proc/PID/status.
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "VmHWM:")
}

/// Open file descriptors: the entries of /proc/PID/fd.
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

fn status_bytes(pid: u32, field: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    kb_from_status(&status, field).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no {field} in /proc/PID/status"),
        )
    })
}

/// Memory the kernel holds for every TCP socket of the machine, in bytes: /proc/net/sockstat's
/// "TCP: ... mem PAGES". On loopback both ends' buffers are counted.
pub fn tcp_mem_bytes() -> io::Result<u64> {
    let sockstat = fs::read_to_string("/proc/net/sockstat")?;
    tcp_mem_pages(&sockstat)
        .map(|p| p * page_size())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no TCP mem in sockstat"))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

fn tcp_mem_pages(sockstat: &str) -> Option<u64> {
    let line = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    words.find(|&w| w == "mem")?;
    words.next()?.parse().ok()
}

/// This process's own CPU time (user + system), in seconds.
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The command name may hold spaces and parentheses, so fields are counted after the last ')'.
fn cpu_from_stat(stat: &str, ticks: f64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 (state) is index 0
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / ticks)
}

fn kb_from_status(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let stat = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_from_stat(stat, 100.0), Some(3.0));
        assert_eq!(cpu_from_stat("garbage", 100.0), None);
        let status = "Name:\tmsgbus\nVmPeak:\t 9000 kB\nVmHWM:\t 4096 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(kb_from_status(status, "VmRSS:"), Some(2048 * 1024));
        assert_eq!(kb_from_status(status, "VmHWM:"), Some(4096 * 1024));
        assert_eq!(kb_from_status(status, "VmSwap:"), None);
        let sockstat =
            "sockets: used 9\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 321\nUDP: inuse 1 mem 3\n";
        assert_eq!(tcp_mem_pages(sockstat), Some(321));
        assert_eq!(tcp_mem_pages("TCP: inuse 5\n"), None);
    }

    #[test]
    fn reads_self() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_ok());
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(peak_rss_bytes(pid).unwrap() >= rss_bytes(pid).unwrap() / 2);
        assert!(fd_count(pid).unwrap() >= 3);
        assert!(tcp_mem_bytes().is_ok());
    }
}
