//! Linux /proc readers: resident memory and CPU time of a process.

use anyhow::{anyhow, Context, Result};

/// `VmRSS` of `pid` in bytes (`pid` None = this process).
pub fn rss_bytes(pid: Option<u32>) -> Result<u64> {
    let path = proc_path(pid, "status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS in {path} (is it a zombie?)"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("parsing {line:?}"))?;
    Ok(kb * 1024)
}

/// User + system CPU time of `pid` (all threads) in seconds.
///
/// Assumes USER_HZ = 100, which is what Linux reports to user space on every
/// mainstream architecture.
pub fn cpu_seconds(pid: Option<u32>) -> Result<f64> {
    let path = proc_path(pid, "stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may contain spaces; everything after its ')' is
    // space-separated, starting with field 3 (state).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("{path} has no field {n}"))?
            .parse()
            .with_context(|| format!("{path} field {n}"))
    };
    let ticks = field(14)? + field(15)?;
    Ok(ticks as f64 / 100.0)
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// Summed `VmRSS` of `pids` in bytes; None when `pids` is empty or one is unreadable.
pub fn rss_sum(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| rss_bytes(Some(p)).ok()).sum()
}

/// Summed CPU time of `pids` in seconds; None when `pids` is empty or one is unreadable.
fn cpu_sum(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| cpu_seconds(Some(p)).ok()).sum()
}

/// A CPU-time reading of the bench itself and, optionally, of the server process(es),
/// summed.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub at: std::time::Instant,
    pub bench: f64,
    pub server: Option<f64>,
}

impl CpuSample {
    pub fn take(server_pids: &[u32]) -> Self {
        Self {
            at: std::time::Instant::now(),
            bench: cpu_seconds(None).unwrap_or(0.0),
            server: cpu_sum(server_pids),
        }
    }

    /// (bench %, server %) of one core between `self` and the later `end`.
    pub fn percent_until(&self, end: &CpuSample) -> (f64, Option<f64>) {
        let wall = end.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let bench = (end.bench - self.bench) / wall * 100.0;
        let server = match (self.server, end.server) {
            (Some(a), Some(b)) => Some((b - a) / wall * 100.0),
            _ => None,
        };
        (bench, server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        assert!(rss_bytes(None).unwrap() > 0);
        assert!(cpu_seconds(None).unwrap() >= 0.0);
        let me = std::process::id();
        assert!(rss_bytes(Some(me)).unwrap() > 0);
        assert!(rss_bytes(Some(u32::MAX)).is_err());
        let one = rss_sum(&[me]).unwrap();
        assert!(rss_sum(&[me, me]).unwrap() >= one);
        assert_eq!(rss_sum(&[]), None);
        assert_eq!(rss_sum(&[me, u32::MAX]), None);
        assert!(CpuSample::take(&[me, me]).server.is_some());
        assert!(CpuSample::take(&[]).server.is_none());
    }
}
